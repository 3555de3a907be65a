// Safetensors reader/writer: round trips, float conversions, and every malformed-file case the reader refuses.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>

#include "io/json.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

using test::expect_error;
using test::safetensors_image;
using test::TempDir;
using test::write_bytes;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

template <class T>
std::vector<uint8_t> as_bytes(const std::vector<T>& values) {
    std::vector<uint8_t> out(values.size() * sizeof(T));
    if (!out.empty()) std::memcpy(out.data(), values.data(), out.size());
    return out;
}

const DType kAllDTypes[] = {DType::BF16, DType::F16, DType::F32, DType::F64,  DType::I8,      DType::I16,
                            DType::I32,  DType::I64, DType::U8,  DType::BOOL, DType::F8_E4M3, DType::F8_E5M2};

TEST(Safetensors, RoundTripEveryDtype) {
    TempDir dir;
    const std::vector<Shape> shapes = {{}, {3}, {2, 3}, {0, 5}};
    SafetensorsWriter writer;
    std::map<std::string, std::pair<DType, std::vector<uint8_t>>> expected;
    int seed = 1;
    for (DType dtype : kAllDTypes) {
        for (size_t s = 0; s < shapes.size(); ++s) {
            const std::string name = str(dtype_name(dtype), ".shape", s);
            std::vector<uint8_t> bytes(static_cast<size_t>(shape_numel(shapes[s])) * dtype_size(dtype));
            for (auto& b : bytes) b = static_cast<uint8_t>(dtype == DType::BOOL ? (seed++ % 2) : (seed++ * 37 + 11));
            writer.add(name, dtype, shapes[s], bytes.data(), bytes.size());
            expected[name] = {dtype, bytes};
        }
    }
    writer.set_metadata("format", "pt");
    writer.set_metadata("note", "multi\nline \"quoted\" é");
    const std::string path = dir.file("all.safetensors");
    writer.write(path);

    for (bool header_only : {false, true}) {
        auto file = SafetensorsFile::open(path, header_only);
        EXPECT_EQ(file->metadata().size(), 2u);
        EXPECT_EQ(file->metadata().at("note"), "multi\nline \"quoted\" é");
        ASSERT_EQ(file->tensors().size(), expected.size());
        for (const auto& [name, want] : expected) {
            const TensorInfo* t = file->find(name);
            ASSERT_NE(t, nullptr) << name;
            EXPECT_EQ(t->dtype, want.first) << name;
            EXPECT_EQ(t->nbytes, want.second.size()) << name;
            EXPECT_EQ(t->file, path);
            if (header_only) {
                EXPECT_EQ(t->data, nullptr);
            } else {
                ASSERT_NE(t->data, nullptr);
                EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + t->nbytes), want.second) << name;
            }
        }
        EXPECT_EQ(file->find("F32.shape2")->shape, (Shape{2, 3}));
        EXPECT_EQ(file->find("F32.shape0")->shape, Shape{});
        EXPECT_EQ(file->find("BOOL.shape3")->shape, (Shape{0, 5}));
        EXPECT_EQ(file->find("missing"), nullptr);
    }
}

TEST(Safetensors, WriterPadsHeaderWithSpacesToEightBytes) {
    TempDir dir;
    SafetensorsWriter writer;
    const float v = 1.0f;
    writer.add_f32("x", Shape{}, &v);
    const std::string path = dir.file("pad.safetensors");
    writer.write(path);
    const std::string bytes = read_file(path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
    EXPECT_EQ(n % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + n + 4);
    const std::string header = bytes.substr(8, n);
    EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1).back(), '}');
    EXPECT_EQ(header.find_last_not_of(' ') + 1 + (8 - (header.find_last_not_of(' ') + 1) % 8) % 8, n);
    // The temporary file was renamed into place: nothing else is left in the folder.
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Safetensors, WriterRefusesBadInput) {
    SafetensorsWriter writer;
    const float v[2] = {1, 2};
    writer.add_f32("a", Shape{2}, v);
    expect_error([&] { writer.add_f32("a", Shape{2}, v); }, {"\"a\"", "added twice"});
    expect_error([&] { writer.add("b", DType::F32, Shape{3}, v, 8); }, {"\"b\"", "needs 12 bytes, got 8"});
    expect_error([&] { writer.add("c", DType::F32, Shape{-1}, v, 8); }, {"\"c\"", "negative dimension"});
    expect_error([&] { writer.add("__metadata__", DType::F32, Shape{2}, v, 8); }, {"not a usable tensor name"});
    expect_error([&] { writer.write("/nonexistent-folder-flux2/x.safetensors"); },
                 {"/nonexistent-folder-flux2/x.safetensors", "cannot create"});
}

TEST(Safetensors, ReadF32ConvertsEveryNumericDtype) {
    TempDir dir;
    SafetensorsWriter writer;
    // bf16 and f16 bit patterns with their exact values: normal, negative, subnormal, extremes, inf.
    const std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x3E20, 0x0001, 0x7F7F, 0xFF80};
    const std::vector<float> bf16_values = {1.0f,     -3.0f, 0.15625f, std::ldexp(1.0f, -133), std::ldexp(255.0f, 120),
                                            -INFINITY};
    const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8400, 0x3555, 0x7C00, 0x03FF};
    const std::vector<float> f16_values = {1.0f,
                                           -2.0f,
                                           65504.0f,
                                           std::ldexp(1.0f, -24),
                                           -std::ldexp(1.0f, -14),
                                           0.333251953125f,
                                           INFINITY,
                                           std::ldexp(1023.0f, -24)};
    const std::vector<double> f64 = {0.5, -1e-3, 1e10};
    const std::vector<int8_t> i8 = {-128, 0, 127};
    const std::vector<int16_t> i16 = {-32768, 12345};
    const std::vector<int32_t> i32 = {-7, 1 << 24};
    const std::vector<int64_t> i64 = {-(int64_t{1} << 40), 3};
    const std::vector<uint8_t> u8 = {0, 200, 255};
    const std::vector<uint8_t> boolean = {0, 1, 1};
    const std::vector<float> f32 = {1.5f, -2.25f, 1e-40f};
    auto add = [&](const std::string& name, DType dtype, const auto& values) {
        auto bytes = as_bytes(values);
        writer.add(name, dtype, Shape{static_cast<int64_t>(values.size())}, bytes.data(), bytes.size());
    };
    add("bf16", DType::BF16, bf16);
    add("f16", DType::F16, f16);
    add("f64", DType::F64, f64);
    add("i8", DType::I8, i8);
    add("i16", DType::I16, i16);
    add("i32", DType::I32, i32);
    add("i64", DType::I64, i64);
    add("u8", DType::U8, u8);
    add("bool", DType::BOOL, boolean);
    add("f32", DType::F32, f32);
    add("f8", DType::F8_E4M3, u8);
    const std::string path = dir.file("values.safetensors");
    writer.write(path);
    auto file = SafetensorsFile::open(path);
    auto values = [&](const std::string& name) { return read_f32(*file->find(name)); };
    EXPECT_EQ(values("bf16"), bf16_values);
    EXPECT_EQ(values("f16"), f16_values);
    EXPECT_EQ(values("f64"), (std::vector<float>{0.5f, -1e-3f, 1e10f}));
    EXPECT_EQ(values("i8"), (std::vector<float>{-128, 0, 127}));
    EXPECT_EQ(values("i16"), (std::vector<float>{-32768, 12345}));
    EXPECT_EQ(values("i32"), (std::vector<float>{-7, 16777216}));
    EXPECT_EQ(values("i64"), (std::vector<float>{-1099511627776.0f, 3}));
    EXPECT_EQ(values("u8"), (std::vector<float>{0, 200, 255}));
    EXPECT_EQ(values("bool"), (std::vector<float>{0, 1, 1}));
    EXPECT_EQ(values("f32"), f32);
    expect_error([&] { values("f8"); }, {path, "\"f8\"", "F8_E4M3", "scale"});
    // f16 NaN stays NaN.
    const uint16_t nan16 = 0x7E00;
    SafetensorsWriter nan_writer;
    nan_writer.add("nan", DType::F16, Shape{1}, &nan16, 2);
    nan_writer.write(dir.file("nan.safetensors"));
    EXPECT_TRUE(std::isnan(read_f32(*SafetensorsFile::open(dir.file("nan.safetensors"))->find("nan"))[0]));

    Tensor t = load_f32(*file->find("i16"));
    EXPECT_EQ(t.shape(), Shape{2});
    EXPECT_EQ(t.to_vector(), (std::vector<float>{-32768, 12345}));
}

TEST(Safetensors, AddBf16RoundsToNearestEven) {
    TempDir dir;
    const float halfway_down = 1.0f + std::ldexp(1.0f, -8);    // tie between 1 and 1+2^-7: even is 1
    const float halfway_up = 1.0f + 3 * std::ldexp(1.0f, -8);  // tie between 1+2^-7 and 1+2^-6: even is 1+2^-6
    const float above_half = 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20);
    const float values[] = {halfway_down, halfway_up, above_half, -0.0f, std::numeric_limits<float>::quiet_NaN()};
    SafetensorsWriter writer;
    writer.add_bf16("w", Shape{5}, values);
    writer.write(dir.file("bf16.safetensors"));
    auto file = SafetensorsFile::open(dir.file("bf16.safetensors"));
    const TensorInfo& t = *file->find("w");
    EXPECT_EQ(t.dtype, DType::BF16);
    const std::vector<float> got = read_f32(t);
    EXPECT_EQ(got[0], 1.0f);
    EXPECT_EQ(got[1], 1.0f + std::ldexp(1.0f, -6));
    EXPECT_EQ(got[2], 1.0f + std::ldexp(1.0f, -7));
    EXPECT_TRUE(std::signbit(got[3]) && got[3] == 0.0f);
    EXPECT_TRUE(std::isnan(got[4]));
}

TEST(Safetensors, HeaderOnlyRefusesToReadData) {
    TempDir dir;
    SafetensorsWriter writer;
    const float v[2] = {1, 2};
    writer.add_f32("a", Shape{2}, v);
    writer.write(dir.file("a.safetensors"));
    auto file = SafetensorsFile::open(dir.file("a.safetensors"), /*header_only=*/true);
    EXPECT_EQ(file->file_size(), std::filesystem::file_size(dir.file("a.safetensors")));
    expect_error([&] { read_f32(*file->find("a")); }, {dir.file("a.safetensors"), "\"a\"", "header-only"});
}

TEST(Safetensors, GapsTrailingBytesAndEmptyTensorsAreAccepted) {
    TempDir dir;
    // "a" at [0,4), a 4-byte gap, "b" at [8,12), an empty tensor inside "a", then 5 trailing bytes.
    const std::string header = R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},)"
                               R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("e":{"dtype":"F32","shape":[0,3],"data_offsets":[2,2]}})";
    float a = 2.5f, b = -1.0f;
    std::string data(17, '\x7f');
    std::memcpy(data.data(), &a, 4);
    std::memcpy(data.data() + 8, &b, 4);
    const std::string path = dir.file("gaps.safetensors");
    write_bytes(path, safetensors_image(header, data));
    auto file = SafetensorsFile::open(path);
    ASSERT_EQ(file->tensors().size(), 3u);
    EXPECT_EQ(file->tensors()[0].name, "a");  // sorted by offset
    EXPECT_EQ(file->tensors()[1].name, "e");
    EXPECT_EQ(file->tensors()[2].name, "b");
    EXPECT_EQ(read_f32(*file->find("a")), std::vector<float>{2.5f});
    EXPECT_EQ(read_f32(*file->find("b")), std::vector<float>{-1.0f});
    EXPECT_TRUE(read_f32(*file->find("e")).empty());
}

struct BadFile {
    const char* name;
    std::string image;
    const char* problem;  // must appear in the message
};

std::string one_tensor(const std::string& entry) { return std::string(R"({"t":)") + entry + "}"; }

std::vector<BadFile> bad_files() {
    const std::string four(4, '\0'), eight(8, '\0'), twelve(12, '\0');
    return {
        {"short", "abc", "too short"},
        {"empty", "", "too short"},
        {"header_past_end", safetensors_image("{}", "", 1000), "runs past the end of the file"},
        {"header_over_limit", safetensors_image("{}", "", 200'000'000), "100 MB limit"},
        {"header_huge_u64", safetensors_image("{}", "", UINT64_MAX - 1), "100 MB limit"},
        {"invalid_json", safetensors_image(R"({"t": )", ""), "invalid JSON"},
        {"zero_header", safetensors_image("", ""), "invalid JSON"},
        {"not_object", safetensors_image("[1, 2]", ""), "header must be a JSON object"},
        // Found by hand: a deeply nested header overflowed the stack when it was printed in the error message.
        {"deep_nesting", safetensors_image(std::string(100000, '[') + std::string(100000, ']'), ""),
         "nested deeper than 64 levels"},
        {"deep_nesting_in_entry",
         safetensors_image(one_tensor(std::string(100000, '[') + std::string(100000, ']')), ""),
         "nested deeper than 64 levels"},
        {"entry_not_object", safetensors_image(one_tensor("5"), ""), "entry must be a JSON object"},
        {"unknown_dtype", safetensors_image(one_tensor(R"({"dtype":"F4","shape":[2],"data_offsets":[0,1]})"), four),
         "unknown dtype \"F4\""},
        {"dtype_not_string", safetensors_image(one_tensor(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})"), four),
         "\"dtype\" must be a string"},
        {"missing_dtype", safetensors_image(one_tensor(R"({"shape":[1],"data_offsets":[0,4]})"), four),
         "missing \"dtype\""},
        {"missing_shape", safetensors_image(one_tensor(R"({"dtype":"F32","data_offsets":[0,4]})"), four),
         "missing \"shape\""},
        {"shape_not_array", safetensors_image(one_tensor(R"({"dtype":"F32","shape":4,"data_offsets":[0,4]})"), four),
         "\"shape\" must be an array"},
        {"negative_dim", safetensors_image(one_tensor(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})"), four),
         "not a non-negative integer"},
        {"fractional_dim", safetensors_image(one_tensor(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})"), four),
         "not a non-negative integer"},
        {"string_dim", safetensors_image(one_tensor(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})"), four),
         "not a non-negative integer"},
        {"numel_overflow",
         safetensors_image(one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,4]})"),
                           four),
         "overflows"},
        {"bytes_overflow",
         safetensors_image(one_tensor(R"({"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,4]})"), four),
         "overflows"},
        {"empty_with_huge_dims",
         safetensors_image(one_tensor(R"({"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})"),
                           four),
         "overflows"},
        {"dim_beyond_u64",
         safetensors_image(one_tensor(R"({"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]})"), four),
         "not a non-negative integer"},
        {"offsets_missing", safetensors_image(one_tensor(R"({"dtype":"F32","shape":[1]})"), four),
         "missing \"data_offsets\""},
        {"offsets_one_int", safetensors_image(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[4]})"), four),
         "two non-negative integers"},
        {"offsets_three_ints",
         safetensors_image(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,4]})"), four),
         "two non-negative integers"},
        {"offsets_float", safetensors_image(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.0]})"), four),
         "two non-negative integers"},
        {"offsets_negative",
         safetensors_image(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})"), four),
         "two non-negative integers"},
        {"offsets_reversed",
         safetensors_image(one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[8,4]})"), eight),
         "end before they begin"},
        {"offsets_past_data",
         safetensors_image(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})"), four),
         "run past the data section (4 bytes)"},
        {"size_mismatch", safetensors_image(one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), twelve),
         "needs 12"},
        {"overlap",
         safetensors_image(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                           twelve),
         "overlap"},
        {"duplicate_name",
         safetensors_image(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                           R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           eight),
         "\"t\" appears twice"},
        {"duplicate_field",
         safetensors_image(one_tensor(R"({"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]})"), four),
         "\"dtype\" appears twice"},
        {"metadata_not_string", safetensors_image(R"({"__metadata__":{"k":1}})", ""),
         "metadata values must be strings"},
        {"metadata_not_object", safetensors_image(R"({"__metadata__":"k"})", ""), "must be an object of strings"},
    };
}

TEST(Safetensors, MalformedFilesGiveErrorsNamingFileAndProblem) {
    TempDir dir;
    for (const BadFile& bad : bad_files()) {
        SCOPED_TRACE(bad.name);
        const std::string path = dir.file(str(bad.name, ".safetensors"));
        write_bytes(path, bad.image);
        for (bool header_only : {false, true}) {
            expect_error([&] { SafetensorsFile::open(path, header_only); }, {path, bad.problem});
        }
        expect_error(
            [&] {
                parse_safetensors_image(reinterpret_cast<const uint8_t*>(bad.image.data()), bad.image.size(),
                                        "in-memory");
            },
            {"in-memory", bad.problem});
    }
}

TEST(Safetensors, MissingFileAndFolderAreErrors) {
    TempDir dir;
    expect_error([&] { SafetensorsFile::open(dir.file("nope.safetensors")); }, {"nope.safetensors", "cannot open"});
    expect_error([&] { SafetensorsFile::open(dir.path().string()); }, {dir.path().string(), "not a regular file"});
}

TEST(Safetensors, LargeHeaderParsesInLinearTime) {
    // nlohmann's callback parser rescans the top-level object after each tensor entry; 100k tensors took minutes.
    constexpr int kTensors = 100000;
    std::string header = "{";
    for (int i = 0; i < kTensors; ++i) {
        header += str(i ? "," : "", "\"t", i, "\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[", 2 * i, ",",
                      2 * i + 2, "]}");
    }
    header += "}";
    const auto start = std::chrono::steady_clock::now();
    const SafetensorsHeader parsed = parse_safetensors_header(header.data(), header.size(), 2 * kTensors, "big");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(parsed.tensors.size(), static_cast<size_t>(kTensors));
    EXPECT_EQ(parsed.tensors.back().offset, 2u * (kTensors - 1));
    EXPECT_LT(seconds, 20.0);  // about 0.3 s when linear
}

TEST(StrictJson, RejectsDuplicateKeysAtAnyDepth) {
    const std::string ok = R"({"a":{"x":1},"b":{"x":2}})";
    EXPECT_EQ(parse_json_strict(ok.data(), ok.size(), "ok")["b"]["x"], 2);
    const std::string nested = R"({"a":[{"x":1,"y":2,"x":3}]})";
    expect_error([&] { parse_json_strict(nested.data(), nested.size(), "cfg.json"); }, {"cfg.json", "\"x\""});
}

// The golden NVFP4-mixed file written by the reference tooling.
class GoldenFile : public ::testing::Test {
protected:
    const std::string path = std::string(FLUX2_TEST_DATA) + "/tiny-dev-nvfp4-mixed.safetensors";
};

TEST_F(GoldenFile, DtypesShapesAndMetadata) {
    auto file = SafetensorsFile::open(path);
    EXPECT_EQ(file->tensors().size(), 75u);
    struct Expect {
        const char* name;
        DType dtype;
        Shape shape;
    };
    const Expect expected[] = {
        {"double_blocks.0.img_mlp.0.weight", DType::U8, {384, 32}},
        {"double_blocks.0.img_mlp.0.weight_scale", DType::F8_E4M3, {384, 4}},
        {"double_blocks.0.img_mlp.0.weight_scale_2", DType::F32, {}},
        {"double_blocks.0.img_mlp.0.input_scale", DType::F32, {}},
        {"double_blocks.0.img_attn.qkv.weight", DType::BF16, {192, 64}},
        {"single_blocks.0.linear1.weight_scale", DType::F8_E4M3, {640, 4}},
    };
    for (const Expect& e : expected) {
        const TensorInfo* t = file->find(e.name);
        ASSERT_NE(t, nullptr) << e.name;
        EXPECT_EQ(t->dtype, e.dtype) << e.name;
        EXPECT_EQ(t->shape, e.shape) << e.name;
    }
    // Mixed: txt_mlp layers have no input_scale.
    EXPECT_EQ(file->find("double_blocks.0.txt_mlp.0.input_scale"), nullptr);
    ASSERT_TRUE(file->metadata().count("_quantization_metadata"));
    const std::string& q = file->metadata().at("_quantization_metadata");
    const auto quant = nlohmann::json::parse(q);
    EXPECT_EQ(quant["layers"]["double_blocks.0.img_mlp.0"]["format"], "nvfp4");
    EXPECT_FALSE(quant["layers"].contains("double_blocks.0.img_attn.qkv"));
}

TEST_F(GoldenFile, Bf16ValuesMatchHandDecodedBytes) {
    // key_norm.scale of block 0 is BF16 [32] at data_offsets [80, 144]; decode its bytes by hand from the file.
    const std::string bytes = read_file(path);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(bytes[i]);
    const size_t start = 8 + header_len + 80;
    std::vector<float> by_hand;
    for (size_t i = 0; i < 32; ++i) {
        const unsigned lo = static_cast<uint8_t>(bytes[start + 2 * i]);
        const unsigned hi = static_cast<uint8_t>(bytes[start + 2 * i + 1]);
        const unsigned bits = hi << 8 | lo;
        const int sign = bits >> 15 ? -1 : 1;
        const int exponent = (bits >> 7) & 0xff;
        const int mantissa = bits & 0x7f;
        ASSERT_TRUE(exponent != 0 && exponent != 0xff);  // RMSNorm gains around 1: normal numbers
        by_hand.push_back(sign * std::ldexp(1.0f + mantissa / 128.0f, exponent - 127));
    }
    for (bool header_only : {false, true}) {
        auto file = SafetensorsFile::open(path, header_only);
        const TensorInfo* t = file->find("double_blocks.0.img_attn.norm.key_norm.scale");
        ASSERT_NE(t, nullptr);
        EXPECT_EQ(t->offset, 80u);
        EXPECT_EQ(t->nbytes, 64u);
        if (header_only) continue;
        EXPECT_EQ(read_f32(*t), by_hand);
        // Gains are randomized around 1 (golden README): a misread would land far away. The first value was also
        // decoded independently with Python's struct module.
        for (float v : by_hand) EXPECT_TRUE(v > 0.5f && v < 2.0f) << v;
        EXPECT_EQ(by_hand[0], 1.2890625f);
    }
}

}  // namespace
}  // namespace flux2
