// The fp4 GEMM operand layout (quant/nvfp4_gemm_layout.h) on the CPU: the prepared weight, decoded the way cuBLASLt
// reads CUDA_R_4F_E2M1 + VEC16_UE4M3 operands, is the dequantized weight; the inline index/rounding helpers the
// device quantizer uses agree with the reference codecs; the activation quantizer reproduces fake_quantize_nvfp4.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/error.h"
#include "quant/float_codecs.h"
#include "quant/linear_weight.h"
#include "quant/nvfp4.h"
#include "quant/nvfp4_gemm_layout.h"

namespace flux2 {
namespace {

// A random NVFP4 weight in the canonical form (every code and every finite non-negative scale can occur).
LinearWeight random_nvfp4(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    LinearWeight w;
    w.name = "test.linear";
    w.out_features = rows;
    w.in_features = cols;
    w.format = WeightFormat::nvfp4;
    w.nvfp4.codes.resize(rows * cols / 2);
    w.nvfp4.scales.resize(rows * cols / 16);
    for (auto& b : w.nvfp4.codes) b = static_cast<uint8_t>(rng() & 0xFF);
    for (auto& s : w.nvfp4.scales) s = static_cast<uint8_t>(rng() % 0x7F);  // 0x7F is NaN
    w.nvfp4.weight_scale_2 = 0.0123f;
    return w;
}

void expect_weight_round_trip(int64_t rows, int64_t cols) {
    SCOPED_TRACE(testing::Message() << "[" << rows << ", " << cols << "]");
    const LinearWeight w = random_nvfp4(rows, cols, static_cast<uint32_t>(rows * 7919 + cols));
    const Nvfp4GemmWeight g = prepare_nvfp4_gemm_weight(w.nvfp4, rows, cols, w.name);
    const int64_t blocks = cols / 16;
    ASSERT_EQ(static_cast<int64_t>(g.codes.size()), rows * cols / 2);
    ASSERT_EQ(static_cast<int64_t>(g.scales.size()), round_up(rows, 128) * round_up(blocks, 4));
    EXPECT_EQ(g.weight_scale_2, w.nvfp4.weight_scale_2);

    const std::vector<float> decoded = decode_nvfp4_gemm_operand(g.codes.data(), g.scales.data(), rows, cols);
    // The GEMM applies weight_scale_2 through alpha, so the operand itself is the weight at weight_scale_2 = 1.
    LinearWeight unit = w;
    unit.nvfp4.weight_scale_2 = 1.0f;
    const std::vector<float> want = dequantize(unit);
    int64_t mismatches = 0;
    for (int64_t i = 0; i < rows * cols; ++i) mismatches += decoded[i] != want[i];
    EXPECT_EQ(mismatches, 0);

    // The padding (rows past `rows`, scale columns past `blocks`) is zero: cuBLASLt reads whole 128x4 tiles.
    std::vector<bool> used(g.scales.size(), false);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < blocks; ++c) used[fp4_scale_offset(r, c, blocks)] = true;
    int64_t nonzero_padding = 0;
    for (size_t i = 0; i < used.size(); ++i) nonzero_padding += !used[i] && g.scales[i] != 0;
    EXPECT_EQ(nonzero_padding, 0);
}

TEST(Fp4Layout, PreparedWeightDecodesToTheDequantizedWeight) {
    expect_weight_round_trip(128, 64);   // one tile column, no padding
    expect_weight_round_trip(256, 256);  // several tiles
}

TEST(Fp4Layout, PreparedWeightPadding) {
    expect_weight_round_trip(100, 64);   // rows not a multiple of 128
    expect_weight_round_trip(130, 48);   // K/16 = 3: scale columns padded to 4; rows past one tile
    expect_weight_round_trip(1, 16);     // one block
    expect_weight_round_trip(300, 80);   // both
}

TEST(Fp4Layout, PreparedWeightChecksSizes) {
    LinearWeight w = random_nvfp4(4, 32, 1);
    w.nvfp4.scales.pop_back();
    EXPECT_THROW(prepare_nvfp4_gemm_weight(w.nvfp4, 4, 32, w.name), Error);
    EXPECT_THROW(prepare_nvfp4_gemm_weight(w.nvfp4, 4, 24, w.name), Error);
}

TEST(Fp4Layout, LowNibbleIsTheEvenElement) {
    // Canonical hi-first byte 0x2A: element 0 = code 2 (1.0), element 1 = code 0xA (-1.0).
    LinearWeight w = random_nvfp4(1, 16, 2);
    w.nvfp4.codes.assign(8, 0x2A);
    w.nvfp4.scales.assign(1, f32_to_e4m3(1.0f));
    const Nvfp4GemmWeight g = prepare_nvfp4_gemm_weight(w.nvfp4, 1, 16, w.name);
    EXPECT_EQ(g.codes[0], 0xA2);
    EXPECT_EQ(fp4_pack(0x2, 0xA), 0xA2);
}

TEST(Fp4Layout, ScaleOffsetMatchesSwizzle) {
    for (int64_t cols : {1, 3, 4, 5, 12, 192}) {
        for (int64_t r = 0; r < 300; ++r)
            for (int64_t c = 0; c < cols; ++c)
                ASSERT_EQ(fp4_scale_offset(r, c, cols), swizzled_scale_offset(r, c, cols)) << r << " " << c;
        EXPECT_EQ(fp4_scale_bytes(300, cols), round_up(300, 128) * round_up(cols, 4));
    }
}

TEST(Fp4Layout, E2m1RoundingMatchesTheCodec) {
    std::vector<float> values = {0.0f, -0.0f, 0.25f, 0.26f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 5.01f, 6.0f,
                                 7.0f, 1e30f, INFINITY, -INFINITY, NAN, -NAN, 1e-40f, -1e-40f};
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> dist(-7.0f, 7.0f);
    for (int i = 0; i < 100000; ++i) values.push_back(dist(rng));
    for (int i = 0; i <= 6 * 8; ++i) values.push_back(i / 8.0f), values.push_back(-i / 8.0f);  // every tie
    for (float v : values) ASSERT_EQ(fp4_e2m1_code(v), f32_to_e2m1(v)) << v;
}

// The activation quantizer, decoded with the GEMM's alpha factor (the tensor scale), is fake_quantize_nvfp4.
void expect_activations_match_fake_quant(int64_t rows, int64_t cols, float tensor_scale, float stddev) {
    SCOPED_TRACE(testing::Message() << "[" << rows << ", " << cols << "] tensor_scale " << tensor_scale);
    std::mt19937 rng(static_cast<uint32_t>(rows + cols));
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> x(rows * cols);
    for (auto& v : x) v = dist(rng);
    for (int64_t c = 0; c < 16 && c < cols; ++c) x[c] = 0.0f;  // an all-zero block
    const Nvfp4GemmActivations a = quantize_nvfp4_gemm_activations(x.data(), rows, cols, tensor_scale);
    ASSERT_EQ(static_cast<int64_t>(a.scales.size()), fp4_scale_bytes(rows, cols / 16));
    const std::vector<float> decoded = decode_nvfp4_gemm_operand(a.codes.data(), a.scales.data(), rows, cols);
    std::vector<float> want = x;
    fake_quantize_nvfp4(want.data(), rows, cols, tensor_scale);
    // fake_quantize multiplies by (tensor_scale * s) once, the GEMM by s then tensor_scale: equal up to one
    // rounding of the product.
    int64_t mismatches = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
        const float got = decoded[i] * tensor_scale;
        mismatches += std::fabs(got - want[i]) > 1e-6f * std::fabs(want[i]);
    }
    EXPECT_EQ(mismatches, 0);
}

TEST(Fp4Layout, ActivationQuantizationIsFakeQuantize) {
    expect_activations_match_fake_quant(5, 64, 0.01f, 1.0f);
    expect_activations_match_fake_quant(130, 48, 0.002f, 3.0f);
    // Dynamic scale, and a static scale so small that block scales saturate at 448.
    std::vector<float> probe = {3.0f, -9.0f};
    expect_activations_match_fake_quant(33, 96, dynamic_nvfp4_scale(probe.data(), 2), 2.0f);
    expect_activations_match_fake_quant(3, 32, 1e-5f, 4.0f);
}

TEST(Fp4Layout, ZeroTensorScaleGivesZeroCodes) {
    std::vector<float> x(32, 0.0f);
    const Nvfp4GemmActivations a = quantize_nvfp4_gemm_activations(x.data(), 1, 32, 0.0f);
    for (uint8_t c : a.codes) EXPECT_EQ(c, 0);
    for (uint8_t s : a.scales) EXPECT_EQ(s, 0);
}

}  // namespace
}  // namespace flux2
