// NVFP4 layout helpers (quant/nvfp4.h) and LinearWeight operations (quant/linear_weight.h).
#include "quant/nvfp4.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"
#include "quant/float_codecs.h"
#include "quant/linear_weight.h"
#include "test_util.h"

namespace flux2 {
namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

// The offset formula, re-derived from the tile picture: 128x4 tiles in row-block-major order; inside a tile
// row r sits in lane r%32 (16 bytes apart) and quarter r/32 (4 bytes apart).
TEST(Nvfp4Swizzle, OffsetOfKnownPositions) {
    EXPECT_EQ(swizzled_scale_offset(0, 0, 8), 0);
    EXPECT_EQ(swizzled_scale_offset(0, 3, 8), 3);
    EXPECT_EQ(swizzled_scale_offset(1, 0, 8), 16);
    EXPECT_EQ(swizzled_scale_offset(31, 0, 8), 31 * 16);
    EXPECT_EQ(swizzled_scale_offset(32, 0, 8), 4);
    EXPECT_EQ(swizzled_scale_offset(127, 3, 8), 31 * 16 + 12 + 3);
    EXPECT_EQ(swizzled_scale_offset(0, 4, 8), 512);        // second column tile of row block 0
    EXPECT_EQ(swizzled_scale_offset(128, 0, 8), 2 * 512);  // row block 1 after both column tiles
    EXPECT_EQ(swizzled_scale_offset(128, 0, 6), 2 * 512);  // 6 columns pad to 8
    EXPECT_EQ(swizzled_scale_offset(128, 0, 3), 512);      // 3 columns pad to one tile
}

TEST(Nvfp4Swizzle, OffsetIsABijectionOntoThePaddedBuffer) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{128, 4}, {200, 6}, {256, 12}, {64, 4}, {1, 1}}) {
        const int64_t rp = round_up(rows, 128), cp = round_up(cols, 4);
        std::set<int64_t> seen;
        for (int64_t r = 0; r < rp; ++r) {
            for (int64_t c = 0; c < cp; ++c) {
                const int64_t o = swizzled_scale_offset(r, c, cols);
                ASSERT_GE(o, 0);
                ASSERT_LT(o, rp * cp);
                seen.insert(o);
            }
        }
        EXPECT_EQ(static_cast<int64_t>(seen.size()), rp * cp) << rows << "x" << cols;
    }
}

TEST(Nvfp4Swizzle, SwizzleAndUnswizzleAreInverse) {
    // Padded (rows not a multiple of 128, cols not a multiple of 4) and aligned shapes.
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{64, 4}, {200, 6}, {192, 12}, {1, 3}, {256, 8}, {128, 4}}) {
        const auto linear = random_bytes(static_cast<size_t>(rows * cols), static_cast<uint32_t>(rows * 31 + cols));
        const auto swz = swizzle_scales(linear.data(), rows, cols);
        ASSERT_EQ(static_cast<int64_t>(swz.size()), round_up(rows, 128) * round_up(cols, 4));
        EXPECT_EQ(unswizzle_scales(swz.data(), rows, cols), linear) << rows << "x" << cols;
        // Every padding byte is zero, every real byte is where the formula says.
        std::vector<bool> real(swz.size(), false);
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                const int64_t o = swizzled_scale_offset(r, c, cols);
                real[o] = true;
                EXPECT_EQ(swz[o], linear[r * cols + c]);
            }
        }
        for (size_t i = 0; i < swz.size(); ++i) {
            if (!real[i]) EXPECT_EQ(swz[i], 0) << "padding byte " << i;
        }
    }
}

TEST(Nvfp4Swizzle, AlignedSwizzleIsAPermutationNotTheIdentity) {
    const auto linear = random_bytes(128 * 8, 5);
    const auto swz = swizzle_scales(linear.data(), 128, 8);
    EXPECT_NE(swz, linear);
    EXPECT_TRUE(std::is_permutation(swz.begin(), swz.end(), linear.begin()));
}

TEST(Nvfp4Swizzle, SlicingRowsAt128MatchesSlicingTheLinearForm) {
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{384, 6}, {300, 4}, {512, 12}}) {
        const auto linear = random_bytes(static_cast<size_t>(rows * cols), 9);
        const auto swz = swizzle_scales(linear.data(), rows, cols);
        for (int64_t begin = 0; begin < rows; begin += 128) {
            for (int64_t count : {int64_t{128}, rows - begin, int64_t{1}, int64_t{100}}) {
                if (begin + count > rows) continue;
                const auto sliced = slice_swizzled_rows(swz.data(), rows, cols, begin, count);
                const auto expect = swizzle_scales(linear.data() + begin * cols, count, cols);
                EXPECT_EQ(sliced, expect) << rows << "x" << cols << " rows " << begin << "+" << count;
            }
        }
    }
}

TEST(Nvfp4Swizzle, SlicingRejectsUnalignedOrOutOfRangeRows) {
    const auto swz = swizzle_scales(random_bytes(256 * 4, 1).data(), 256, 4);
    EXPECT_THROW(slice_swizzled_rows(swz.data(), 256, 4, 64, 64), Error);
    EXPECT_THROW(slice_swizzled_rows(swz.data(), 256, 4, 128, 129), Error);
    EXPECT_NO_THROW(slice_swizzled_rows(swz.data(), 256, 4, 128, 128));
}

TEST(Nvfp4Nibbles, SwapExchangesHalvesAndIsAnInvolution) {
    std::vector<uint8_t> b = {0x12, 0xAB, 0xF0, 0x0F, 0x77};
    swap_nibbles(b.data(), static_cast<int64_t>(b.size()));
    EXPECT_EQ(b, (std::vector<uint8_t>{0x21, 0xBA, 0x0F, 0xF0, 0x77}));
    auto all = random_bytes(4096, 3);
    auto copy = all;
    swap_nibbles(copy.data(), static_cast<int64_t>(copy.size()));
    swap_nibbles(copy.data(), static_cast<int64_t>(copy.size()));
    EXPECT_EQ(copy, all);
}

// ---- activation fake-quantization ----

TEST(Nvfp4FakeQuant, UnitBlockScaleSnapsToTheE2m1Grid) {
    // amax 6 with tensor scale 1 gives block scale exactly 1: values land on the E2M1 grid directly.
    std::vector<float> x = {6.0f,  0.3f, 0.25f, 0.75f, 2.5f,  5.0f, 5.5f,  -1.25f,
                            -6.0f, 3.5f, 0.1f,  -0.0f, 1.75f, 4.9f, -2.9f, 1.0f};
    fake_quantize_nvfp4(x.data(), 1, 16, 1.0f);
    const std::vector<float> expect = {6.0f,  0.5f, 0.0f, 1.0f,  2.0f, 4.0f, 6.0f,  -1.0f,
                                       -6.0f, 4.0f, 0.0f, -0.0f, 2.0f, 4.0f, -3.0f, 1.0f};
    EXPECT_EQ(x, expect);
}

TEST(Nvfp4FakeQuant, BlockScaleIsRoundedToE4m3AndTensorScaleApplies) {
    std::vector<float> x(48, 0.0f);
    // Block 0: amax 6.6, tensor scale 1 -> block scale 1.1 rounds to 1.125 (E4M3), so 6.6 / 1.125 = 5.87 -> 6.
    x[0] = 6.6f;
    x[1] = 1.2f;  // 1.2 / 1.125 = 1.067 -> 1 -> 1.125
    // Block 1 stays zero. Block 2: amax 1e6 -> block scale saturates at 448, values clamp at 6 * 448.
    x[32] = 1e6f;
    x[33] = 448.0f;  // 448 / 448 = 1 -> 1 -> 448
    fake_quantize_nvfp4(x.data(), 1, 48, 1.0f);
    EXPECT_EQ(x[0], 6.75f);
    EXPECT_EQ(x[1], 1.125f);
    for (int i = 16; i < 32; ++i) EXPECT_EQ(x[i], 0.0f);
    EXPECT_EQ(x[32], 2688.0f);
    EXPECT_EQ(x[33], 448.0f);

    // Tensor scale 0.5, amax 12 -> block scale 12/6/0.5 = 4, total 2: x / 2 on the grid, times 2.
    std::vector<float> y(16, 0.0f);
    y[0] = 12.0f;
    y[1] = 5.0f;  // 2.5 -> 2 -> 4
    y[2] = 7.0f;  // 3.5 -> 4 -> 8
    fake_quantize_nvfp4(y.data(), 1, 16, 0.5f);
    EXPECT_EQ(y[0], 12.0f);
    EXPECT_EQ(y[1], 4.0f);
    EXPECT_EQ(y[2], 8.0f);
}

TEST(Nvfp4FakeQuant, TinyBlocksUnderflowToZeroAndRowsAreIndependent) {
    // A block whose scale rounds to E4M3 zero (below 2^-10 after dividing by the tensor scale) becomes zero.
    std::vector<float> x(32, 0.0f);
    x[0] = std::ldexp(1.0f, -20);
    x[16] = 3.0f;
    fake_quantize_nvfp4(x.data(), 2, 16, 1.0f);
    EXPECT_EQ(x[0], 0.0f);
    EXPECT_EQ(x[16], 3.0f);
}

TEST(Nvfp4FakeQuant, ZeroTensorScaleAndBadShapes) {
    std::vector<float> x(16, 0.0f);
    EXPECT_EQ(dynamic_nvfp4_scale(x.data(), 16), 0.0f);
    fake_quantize_nvfp4(x.data(), 1, 16, 0.0f);
    for (float v : x) EXPECT_EQ(v, 0.0f);
    std::vector<float> y(24, 1.0f);
    EXPECT_THROW(fake_quantize_nvfp4(y.data(), 1, 24, 1.0f), Error);
    EXPECT_THROW(fake_quantize_nvfp4(x.data(), 1, 16, -1.0f), Error);
}

TEST(Nvfp4FakeQuant, DynamicScaleIsAmaxOver2688) {
    std::vector<float> x = {1.0f, -5376.0f, 3.0f};
    EXPECT_EQ(dynamic_nvfp4_scale(x.data(), 3), 2.0f);
    x[1] = -1.0f;
    EXPECT_EQ(dynamic_nvfp4_scale(x.data(), 3), 3.0f / 2688.0f);
}

// ---- LinearWeight ----

LinearWeight make_nvfp4(int64_t out, int64_t in, uint32_t seed) {
    LinearWeight w;
    w.name = "test";
    w.out_features = out;
    w.in_features = in;
    w.format = WeightFormat::nvfp4;
    w.nvfp4.codes = random_bytes(static_cast<size_t>(out * in / 2), seed);
    w.nvfp4.scales = random_bytes(static_cast<size_t>(out * in / 16), seed + 1);
    for (auto& s : w.nvfp4.scales) s &= 0x77;  // finite, moderate scales (no NaN code 0x7F)
    w.nvfp4.weight_scale_2 = 0.0123f;
    w.nvfp4.input_scale = 0.5f;
    return w;
}

TEST(LinearWeight, Nvfp4DequantizeIsHiFirstTimesBothScales) {
    const LinearWeight w = make_nvfp4(3, 32, 21);
    const auto d = dequantize(w);
    ASSERT_EQ(d.size(), 96u);
    for (int64_t r = 0; r < 3; ++r) {
        for (int64_t k = 0; k < 32; ++k) {
            const uint8_t byte = w.nvfp4.codes[r * 16 + k / 2];
            const uint8_t code = (k % 2 == 0) ? byte >> 4 : byte & 0xF;
            const float s = e4m3_to_f32(w.nvfp4.scales[r * 2 + k / 16]);
            EXPECT_EQ(d[r * 32 + k], e2m1_to_f32(code) * (w.nvfp4.weight_scale_2 * s));
        }
    }
}

TEST(LinearWeight, DenseAndFp8Dequantize) {
    LinearWeight w;
    w.out_features = 1;
    w.in_features = 3;
    w.dense.dtype = DType::BF16;
    const uint16_t bf[3] = {0x3F80, 0xC000, 0x3E80};  // 1, -2, 0.25
    w.dense.bytes.assign(reinterpret_cast<const uint8_t*>(bf), reinterpret_cast<const uint8_t*>(bf) + 6);
    EXPECT_EQ(dequantize(w), (std::vector<float>{1.0f, -2.0f, 0.25f}));
    EXPECT_EQ(w.format_label(), "bf16");
    w.dense.dtype = DType::F16;
    const uint16_t h[3] = {0x3C00, 0xC000, 0x3400};  // 1, -2, 0.25
    w.dense.bytes.assign(reinterpret_cast<const uint8_t*>(h), reinterpret_cast<const uint8_t*>(h) + 6);
    EXPECT_EQ(dequantize(w), (std::vector<float>{1.0f, -2.0f, 0.25f}));
    EXPECT_EQ(w.format_label(), "f16");
    w.dense.bytes.resize(4);
    EXPECT_THROW(dequantize(w), Error);

    LinearWeight f;
    f.out_features = 1;
    f.in_features = 2;
    f.format = WeightFormat::fp8;
    f.fp8.codes = {0x38, 0xC0};  // 1, -2
    f.fp8.scale = 0.5f;
    EXPECT_EQ(dequantize(f), (std::vector<float>{0.5f, -1.0f}));
    EXPECT_EQ(f.format_label(), "fp8");
    EXPECT_STREQ(weight_format_name(WeightFormat::dense), "dense");
    EXPECT_STREQ(weight_format_name(WeightFormat::nvfp4), "nvfp4");
}

TEST(LinearWeight, SliceRowsAndSwapHalvesMoveScalesWithCodes) {
    const LinearWeight w = make_nvfp4(6, 32, 41);
    const auto full = dequantize(w);
    const LinearWeight mid = slice_rows(w, 2, 3, "mid");
    EXPECT_EQ(mid.name, "mid");
    EXPECT_EQ(mid.out_features, 3);
    EXPECT_EQ(mid.nvfp4.input_scale, w.nvfp4.input_scale);
    EXPECT_EQ(dequantize(mid), std::vector<float>(full.begin() + 2 * 32, full.begin() + 5 * 32));
    EXPECT_THROW(slice_rows(w, 4, 3, "bad"), Error);

    const auto swapped = dequantize(swap_row_halves(w));
    std::vector<float> expect(full.begin() + 3 * 32, full.end());
    expect.insert(expect.end(), full.begin(), full.begin() + 3 * 32);
    EXPECT_EQ(swapped, expect);
    EXPECT_THROW(swap_row_halves(slice_rows(w, 0, 3, "odd")), Error);
}

// Largest distance in units in the last place (values of opposite sign count as far apart unless both are 0).
int64_t max_ulp_distance(const std::vector<float>& a, const std::vector<float>& b) {
    auto key = [](float f) {
        const int32_t i = std::bit_cast<int32_t>(f);
        return i < 0 ? int64_t{INT32_MIN} - i : int64_t{i};
    };
    int64_t worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max<int64_t>(worst, std::llabs(key(a[i]) - key(b[i])));
    return worst;
}

// The golden checkpoints, decoded with nothing but the helpers above (no binder): raw hi-first codes, swizzled
// scales (padded in tiny-dev, aligned in tiny-klein) unswizzled, then dequantized. Must equal comfy-kitchen's
// fp32 dequantization (`dequant.<variant>.<L>`) within 1 ulp.
TEST(LinearWeight, GoldenCheckpointsDequantizeLikeTheReference) {
    int layers = 0;
    for (const std::string model : {"dev", "klein"}) {
        auto golden = SafetensorsFile::open(test::data_path("tiny-" + model + "-golden.safetensors"));
        for (const std::string variant : {"nvfp4", "nvfp4-mixed"}) {
            auto ckpt = SafetensorsFile::open(test::data_path("tiny-" + model + "-" + variant + ".safetensors"));
            const std::string prefix = "dequant." + variant + ".";
            for (const TensorInfo& ref : golden->tensors()) {
                if (ref.name.rfind(prefix, 0) != 0) continue;
                const std::string layer = ref.name.substr(prefix.size());
                SCOPED_TRACE(variant + " " + layer);
                const TensorInfo& codes = *ckpt->find(layer + ".weight");
                const TensorInfo& scales = *ckpt->find(layer + ".weight_scale");
                LinearWeight w;
                w.name = layer;
                w.format = WeightFormat::nvfp4;
                w.out_features = codes.shape[0];
                w.in_features = codes.shape[1] * 2;
                const int64_t cols = w.in_features / kNvfp4Block;
                ASSERT_EQ(scales.shape, (Shape{round_up(w.out_features, 128), round_up(cols, 4)}));
                w.nvfp4.codes.assign(codes.data, codes.data + codes.nbytes);
                w.nvfp4.scales = unswizzle_scales(scales.data, w.out_features, cols);
                w.nvfp4.weight_scale_2 = read_f32(*ckpt->find(layer + ".weight_scale_2"))[0];
                const std::vector<float> got = dequantize(w), want = read_f32(ref);
                ASSERT_EQ(got.size(), want.size());
                EXPECT_LE(max_ulp_distance(got, want), 1);
                // The nibble order matters: the other order must not match.
                swap_nibbles(w.nvfp4.codes.data(), static_cast<int64_t>(w.nvfp4.codes.size()));
                EXPECT_GT(test::rel_error(dequantize(w), want), 0.1);
                ++layers;
            }
        }
    }
    EXPECT_EQ(layers, 16 + 12 + 10 + 8);
}

}  // namespace
}  // namespace flux2
