#include "io/image.h"

#include <gtest/gtest.h>
#include <png.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>

// jpeglib.h needs size_t and FILE declared before it.
// clang-format off
#include <cstdio>
#include <jpeglib.h>
// clang-format on

#include "core/error.h"
#include "io/safetensors.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

const std::string kData = FLUX2_TEST_DATA;

Image gradient(int w, int h) {
    Image img = Image::blank(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = img.pixel(x, y);
            p[0] = static_cast<uint8_t>(x * 255 / std::max(1, w - 1));
            p[1] = static_cast<uint8_t>(y * 255 / std::max(1, h - 1));
            p[2] = static_cast<uint8_t>((x * 7 + y * 13) & 0xFF);
        }
    return img;
}

// Encodes with libpng's simplified API in another pixel format, to exercise the decoder's conversions.
std::vector<uint8_t> simple_png(int w, int h, png_uint_32 format, const std::vector<uint8_t>& pixels) {
    png_image image{};
    image.version = PNG_IMAGE_VERSION;
    image.width = w;
    image.height = h;
    image.format = format;
    png_alloc_size_t size = 0;
    EXPECT_TRUE(png_image_write_get_memory_size(image, size, 0, pixels.data(), 0, nullptr));
    std::vector<uint8_t> out(size);
    EXPECT_TRUE(png_image_write_to_memory(&image, out.data(), &size, 0, pixels.data(), 0, nullptr));
    out.resize(size);
    return out;
}

std::vector<uint8_t> encode_test_jpeg(const Image& img, bool grayscale) {
    jpeg_compress_struct cinfo{};
    jpeg_error_mgr jerr;
    cinfo.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&cinfo);
    unsigned char* buffer = nullptr;
    unsigned long size = 0;
    jpeg_mem_dest(&cinfo, &buffer, &size);
    cinfo.image_width = img.width;
    cinfo.image_height = img.height;
    cinfo.input_components = grayscale ? 1 : 3;
    cinfo.in_color_space = grayscale ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&cinfo);
    jpeg_set_quality(&cinfo, 100, TRUE);
    for (int c = 0; c < cinfo.num_components; ++c)
        cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
    jpeg_start_compress(&cinfo, TRUE);
    std::vector<uint8_t> row(img.width * 3);
    while (cinfo.next_scanline < cinfo.image_height) {
        const uint8_t* src = img.pixel(0, cinfo.next_scanline);
        if (grayscale)
            for (int x = 0; x < img.width; ++x) row[x] = src[3 * x];
        else
            std::memcpy(row.data(), src, row.size());
        JSAMPROW r = row.data();
        jpeg_write_scanlines(&cinfo, &r, 1);
    }
    jpeg_finish_compress(&cinfo);
    std::vector<uint8_t> out(buffer, buffer + size);
    jpeg_destroy_compress(&cinfo);
    std::free(buffer);
    return out;
}

TEST(ImagePng, RoundTripWithText) {
    const Image img = gradient(37, 23);
    const ImageText text = {{"prompt", "a red fox, \"quoted\"\nsecond line"},
                            {"seed", "42"},
                            {"steps", "28"},
                            {"guidance", "4"},
                            {"model", "FLUX.2-dev"},
                            {"precision", "nvfp4"},
                            {"negative prompt", "renard rouge \xC3\xA9t\xC3\xA9 \xE7\x8B\x90"}};  // UTF-8 -> iTXt
    const auto bytes = encode_png(img, text);
    ImageText back;
    const Image decoded = decode_png(bytes.data(), bytes.size(), "memory", &back);
    EXPECT_EQ(decoded.width, 37);
    EXPECT_EQ(decoded.height, 23);
    EXPECT_EQ(decoded.rgb, img.rgb);
    EXPECT_EQ(back, text);
}

// Every zlib level stores the same pixels, each in fewer bytes than level 0 (stored, no compression) on a smooth
// image, and a level outside 0-9 is refused by name.
TEST(ImagePng, ZlibLevelsKeepThePixels) {
    const Image img = gradient(64, 48);
    size_t stored = 0;
    for (int level : {0, 1, kPngZlibLevel, 9}) {
        const auto bytes = encode_png(img, {}, level);
        EXPECT_EQ(decode_png(bytes.data(), bytes.size(), "memory").rgb, img.rgb) << "level " << level;
        if (level == 0) stored = bytes.size();
        EXPECT_LE(bytes.size(), stored) << "level " << level;
    }
    EXPECT_LT(encode_png(img, {}, kPngZlibLevel).size(), stored);
    try {
        encode_png(img, {}, 10);
        FAIL() << "level 10 was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("zlib level must be 0-9, got 10"), std::string::npos) << e.what();
    }
}

TEST(ImagePng, FileRoundTrip) {
    const test::TempDir tmp;
    const std::string path = tmp.file("image.png");
    const Image img = gradient(16, 9);
    write_png(path, img, {{"seed", "7"}});
    ImageText back;
    const Image decoded = read_image(path, &back);
    EXPECT_EQ(decoded.rgb, img.rgb);
    EXPECT_EQ(back.at("seed"), "7");
    EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST(ImagePng, RejectsBadTextKeys) {
    const Image img = gradient(4, 4);
    EXPECT_THROW(encode_png(img, {{"", "x"}}), Error);
    EXPECT_THROW(encode_png(img, {{" lead", "x"}}), Error);
    EXPECT_THROW(encode_png(img, {{"double  space", "x"}}), Error);
    EXPECT_THROW(encode_png(img, {{std::string(80, 'k'), "x"}}), Error);
    EXPECT_THROW(encode_png(img, {{"bad utf8", "\xC3("}}), Error);
}

TEST(ImagePng, ReferenceImageDecodesToGoldenBytes) {
    const Image img = read_image(kData + "/ref-80x64.png");
    ASSERT_EQ(img.width, 80);
    ASSERT_EQ(img.height, 64);
    auto golden = SafetensorsFile::open(kData + "/pipeline-golden.safetensors");
    const TensorInfo& ref = *golden->find("dev_edit.ref_uint8");
    ASSERT_EQ(ref.dtype, DType::U8);
    ASSERT_EQ(ref.shape, (Shape{64, 80, 3}));
    ASSERT_EQ(ref.nbytes, img.rgb.size());
    EXPECT_EQ(std::memcmp(ref.data, img.rgb.data(), ref.nbytes), 0);
}

TEST(ImagePng, ConvertsGreyAndDropsAlpha) {
    std::vector<uint8_t> grey = {0, 50, 100, 150, 200, 250};
    const auto grey_png = simple_png(3, 2, PNG_FORMAT_GRAY, grey);
    const Image g = decode_png(grey_png.data(), grey_png.size(), "grey");
    for (int i = 0; i < 6; ++i)
        for (int c = 0; c < 3; ++c) EXPECT_EQ(g.rgb[i * 3 + c], grey[i]);

    std::vector<uint8_t> rgba = {10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255};
    const auto rgba_png = simple_png(3, 1, PNG_FORMAT_RGBA, rgba);
    const Image a = decode_png(rgba_png.data(), rgba_png.size(), "rgba");
    EXPECT_EQ(a.rgb, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60, 70, 80, 90}));
}

TEST(ImagePng, RejectsCorruptData) {
    auto bytes = encode_png(gradient(20, 20));
    EXPECT_THROW(decode_png(bytes.data(), bytes.size() / 2, "truncated"), Error);
    bytes[bytes.size() / 2] ^= 0xFF;  // breaks the IDAT CRC
    EXPECT_THROW(decode_png(bytes.data(), bytes.size(), "corrupt"), Error);
    const uint8_t junk[16] = {1, 2, 3};
    EXPECT_THROW(decode_image(junk, sizeof junk, "junk"), Error);
}

// A chunk declaring more data than the file holds is refused before libpng reads it: libpng would allocate and
// clear the declared length (1.9 GB for this iTXt chunk, from a 268-byte file found by fuzz/image_decode_fuzz.cpp).
TEST(ImagePng, RefusesChunksLongerThanTheFile) {
    std::vector<uint8_t> bytes = encode_png(gradient(20, 20));
    const uint8_t itxt[] = {0x70, 0x73, 0x6D, 0x16, 'i', 'T', 'X', 't', 'n', 'e', 'g', 0, 0, 0};
    bytes.insert(bytes.begin() + 33, itxt, itxt + sizeof itxt);  // after the signature and IHDR
    try {
        decode_png(bytes.data(), bytes.size(), "upload");
        FAIL() << "decoded";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("chunk 'iTXt' at byte 33 declares 1886612758 bytes"), std::string::npos)
            << e.what();
    }
    // The same with the file cut inside a chunk's length field: libpng reports the early end.
    EXPECT_THROW(decode_png(bytes.data(), 36, "cut"), Error);
}

// A zTXt chunk whose text inflates beyond libpng's 8 MB chunk limit is dropped (libpng: "zTXt: truncated"), not
// inflated into memory: decode_png relies on that limit for compressed text, so this pins it against the libpng in
// use. A small one is read, so the chunk itself is well formed.
TEST(ImagePng, CompressedTextBeyondTheChunkLimitIsDropped) {
    auto ztxt = [](const std::string& key, size_t text_bytes) {
        const std::string text(text_bytes, 'a');
        uLongf packed_size = compressBound(text.size());
        std::vector<uint8_t> packed(packed_size);
        EXPECT_EQ(compress2(packed.data(), &packed_size, reinterpret_cast<const Bytef*>(text.data()), text.size(), 9),
                  Z_OK);
        std::vector<uint8_t> body(key.begin(), key.end());
        body.push_back(0);  // end of the keyword
        body.push_back(0);  // compression method: deflate
        body.insert(body.end(), packed.begin(), packed.begin() + static_cast<long>(packed_size));
        std::vector<uint8_t> chunk;
        for (int i = 3; i >= 0; --i) chunk.push_back(static_cast<uint8_t>(body.size() >> (8 * i)));
        const char type[4] = {'z', 'T', 'X', 't'};
        chunk.insert(chunk.end(), type, type + 4);
        chunk.insert(chunk.end(), body.begin(), body.end());
        const uLong crc = crc32(crc32(0, reinterpret_cast<const Bytef*>(type), 4), body.data(), body.size());
        for (int i = 3; i >= 0; --i) chunk.push_back(static_cast<uint8_t>(crc >> (8 * i)));
        return chunk;
    };
    std::vector<uint8_t> bytes = encode_png(gradient(20, 20));
    const std::vector<uint8_t> small = ztxt("small", 1000), big = ztxt("big", 20'000'000);
    bytes.insert(bytes.begin() + 33, big.begin(), big.end());  // after the signature and IHDR
    bytes.insert(bytes.begin() + 33, small.begin(), small.end());
    ImageText text;
    const Image img = decode_png(bytes.data(), bytes.size(), "bomb", &text);
    EXPECT_EQ(img.width, 20);
    EXPECT_EQ(text.count("big"), 0u);
    ASSERT_EQ(text.count("small"), 1u);
    EXPECT_EQ(text.at("small"), std::string(1000, 'a'));
}

TEST(ImageJpeg, DecodesColourAndGrey) {
    Image img = gradient(40, 24);
    for (int y = 0; y < img.height; ++y)
        for (int x = 0; x < img.width; ++x) img.pixel(x, y)[2] = static_cast<uint8_t>(3 * (x + y));  // smooth
    const auto jpeg = encode_test_jpeg(img, false);
    const Image decoded = decode_image(jpeg.data(), jpeg.size(), "jpeg");
    ASSERT_EQ(decoded.width, 40);
    ASSERT_EQ(decoded.height, 24);
    int max_diff = 0;
    for (size_t i = 0; i < img.rgb.size(); ++i) max_diff = std::max(max_diff, std::abs(img.rgb[i] - decoded.rgb[i]));
    EXPECT_LE(max_diff, 6);  // lossy, but quality 100 without chroma subsampling stays close

    const auto grey = encode_test_jpeg(img, true);
    const Image g = decode_jpeg(grey.data(), grey.size(), "grey jpeg");
    for (size_t i = 0; i < g.rgb.size(); i += 3) {
        EXPECT_EQ(g.rgb[i], g.rgb[i + 1]);
        EXPECT_EQ(g.rgb[i], g.rgb[i + 2]);
    }
    EXPECT_THROW(decode_jpeg(jpeg.data(), jpeg.size() / 3, "truncated jpeg"), Error);
}

}  // namespace
}  // namespace flux2
