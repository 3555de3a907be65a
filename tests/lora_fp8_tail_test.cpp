// The plan that carries a LoRA branch inside an FP8 GEMM (quant/lora_fp8_tail.h), emulated on the host code by
// code as the GPU runs it: the activations quantized with the carried branch's headroom, the down-projection from
// their E4M3 codes and A's E4M3 rows, the token's scale grown where its t codes would not fit (its x codes
// rescaled), t's codes beside x's, B's codes beside W's, both scaled by the token's s_x and the channel's s_w. Checked:
// the layer's output (base and branch) within 8% of the exact one (the bound of the CUDA tests' fp8 linears; FP8 alone
// gives 2-5% here), for typical tokens and for tokens whose branch dwarfs their own values; B's codes fill E4M3's
// range; what cannot be planned is refused with the reason.
#include "quant/lora_fp8_tail.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "quant/float_codecs.h"

namespace flux2 {
namespace {

float bf16_round(float v) { return bf16_to_f32(f32_to_bf16(v)); }

// E4M3 codes of a row with the per-row scale headroom * amax / 448 (the producers' and quantize_fp8's rule).
std::vector<float> quantize_row(const std::vector<float>& x, float& scale, float headroom = 1.0f) {
    float amax = 0.0f;
    for (float v : x) amax = std::max(amax, std::fabs(v));
    scale = (amax > 0.0f ? amax / 448.0f : 1.0f) * headroom;
    const float inv = 1.0f / scale;
    std::vector<float> codes(x.size());
    for (size_t i = 0; i < x.size(); ++i) codes[i] = e4m3_to_f32(f32_to_e4m3(x[i] * inv));
    return codes;
}

struct Case {
    int64_t rank, padded, in, out;
    std::vector<float> a, b, w;  // A [rank, in], B [out, rank] (scaled), W [out, in]
    std::vector<float> wq, w_scales;
};

Case random_case(int64_t rank, int64_t in, int64_t out, float b_std, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n01(0.0f, 1.0f);
    Case c{rank, (rank + 15) / 16 * 16, in, out, {}, {}, {}, {}, {}};
    for (int64_t i = 0; i < rank * in; ++i) c.a.push_back(n01(rng) / std::sqrt(float(in)));
    for (int64_t i = 0; i < out * rank; ++i) c.b.push_back(n01(rng) * b_std);
    for (int64_t i = 0; i < out * in; ++i) c.w.push_back(n01(rng) * 0.02f);
    for (int64_t j = 0; j < out; ++j) {
        float s = 0.0f;
        const std::vector<float> q = quantize_row({c.w.begin() + j * in, c.w.begin() + (j + 1) * in}, s);
        c.wq.insert(c.wq.end(), q.begin(), q.end());
        c.w_scales.push_back(s);
    }
    return c;
}

// One token through the FP8 layer with its carried branch, as the GPU computes it; p: the token's scale factor.
std::vector<double> carried_layer(const Case& c, const LoraFp8Tail& plan, const std::vector<float>& x, float& p) {
    float s_x = 0.0f;
    std::vector<float> xq = quantize_row(x, s_x, kLoraFp8TailHeadroom);
    std::vector<float> t(c.rank);
    float largest = 0.0f;
    for (int64_t r = 0; r < c.rank; ++r) {
        std::vector<float> a_row(c.a.begin() + r * c.in, c.a.begin() + (r + 1) * c.in);
        for (float& v : a_row) v = bf16_round(v);
        float s_a = 0.0f;
        const std::vector<float> aq = quantize_row(a_row, s_a);
        double acc = 0.0;
        for (int64_t i = 0; i < c.in; ++i) acc += double(xq[i]) * aq[i];
        t[r] = static_cast<float>(acc * s_x * s_a);
        largest = std::max(largest, std::fabs(t[r]) * plan.t_factor[r]);
    }
    p = lora_fp8_tail_rescale(largest, s_x);
    if (p > 1.0f) {
        for (float& v : xq) v = e4m3_to_f32(f32_to_e4m3(v / p));
        s_x *= p;
    }
    std::vector<double> out(c.out, 0.0);
    for (int64_t j = 0; j < c.out; ++j) {
        double acc = 0.0;
        for (int64_t i = 0; i < c.in; ++i) acc += double(xq[i]) * c.wq[j * c.in + i];
        for (int64_t r = 0; r < c.rank; ++r) {
            const float raw = t[r] * plan.t_factor[r] / s_x;
            EXPECT_LE(std::fabs(raw), 448.0f) << "t code of rank " << r << " would saturate";
            acc += double(e4m3_to_f32(f32_to_e4m3(raw))) * e4m3_to_f32(plan.b_codes[j * c.padded + r]);
        }
        out[j] = acc * s_x * c.w_scales[j];
    }
    return out;
}

std::vector<double> exact_layer(const Case& c, const std::vector<float>& x) {
    std::vector<double> out(c.out, 0.0);
    for (int64_t j = 0; j < c.out; ++j) {
        for (int64_t i = 0; i < c.in; ++i) out[j] += double(x[i]) * c.w[j * c.in + i];
    }
    for (int64_t r = 0; r < c.rank; ++r) {
        double t = 0.0;
        for (int64_t i = 0; i < c.in; ++i) t += double(x[i]) * c.a[r * c.in + i];
        for (int64_t j = 0; j < c.out; ++j) out[j] += t * c.b[j * c.rank + r];
    }
    return out;
}

double rel(const std::vector<double>& got, const std::vector<double>& want) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < got.size(); ++i) {
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    return std::sqrt(num / den);
}

LoraFp8Tail plan_for(const Case& c) {
    LoraFp8Tail plan;
    std::string why;
    EXPECT_TRUE(plan_lora_fp8_tail(c.b.data(), c.rank, c.padded, c.out, c.w_scales.data(), plan, why)) << why;
    return plan;
}

TEST(LoraFp8Tail, LayerWithItsBranchMatchesTheExactOne) {
    for (float b_std : {1e-4f, 0.003f, 0.05f}) {
        const Case c = random_case(20, 256, 48, b_std, 7);
        const LoraFp8Tail plan = plan_for(c);
        ASSERT_EQ(plan.t_factor.size(), size_t(c.padded));
        ASSERT_EQ(plan.b_codes.size(), size_t(c.out * c.padded));
        for (int64_t r = c.rank; r < c.padded; ++r) EXPECT_EQ(plan.t_factor[r], 0.0f) << "padded rank " << r;
        std::mt19937 rng(11);
        std::normal_distribution<float> n01(0.0f, 1.0f);
        for (int trial = 0; trial < 8; ++trial) {
            std::vector<float> x(c.in);
            for (float& v : x) v = n01(rng) * (trial == 0 ? 40.0f : 1.0f);
            x[trial] *= 30.0f;  // an outlier feature, as FLUX.2's activations have
            float p = 0.0f;
            EXPECT_LE(rel(carried_layer(c, plan, x, p), exact_layer(c, x)), 0.08)
                << "b_std " << b_std << " trial " << trial << " p " << p;
        }
    }
}

// A token whose branch is far larger than its own values (x following the signs of a row of A, a strong B): its
// scale grows by a power of two and its codes are rescaled; it still comes out right. An ordinary token keeps its
// scale.
TEST(LoraFp8Tail, TokensWhoseBranchDoesNotFitGetALargerScale) {
    const Case c = random_case(12, 192, 40, 0.5f, 3);
    const LoraFp8Tail plan = plan_for(c);
    std::vector<float> aligned(c.in);
    for (int64_t i = 0; i < c.in; ++i) aligned[i] = c.a[4 * c.in + i] >= 0.0f ? 2.0f : -2.0f;
    float p = 0.0f;
    const std::vector<double> got = carried_layer(c, plan, aligned, p);
    EXPECT_GT(p, 1.0f) << "the aligned token's t codes need a larger scale";
    EXPECT_EQ(std::exp2(std::round(std::log2(p))), p) << "a power of two";
    EXPECT_LE(rel(got, exact_layer(c, aligned)), 0.08);

    const Case weak = random_case(12, 192, 40, 1e-4f, 3);
    std::mt19937 rng(5);
    std::normal_distribution<float> n01(0.0f, 1.0f);
    std::vector<float> x(c.in);
    for (float& v : x) v = n01(rng);
    carried_layer(weak, plan_for(weak), x, p);
    EXPECT_EQ(p, 1.0f);
}

TEST(LoraFp8Tail, BCodesFillTheE4m3Range) {
    const Case c = random_case(8, 128, 32, 0.01f, 3);
    const LoraFp8Tail plan = plan_for(c);
    for (int64_t r = 0; r < c.rank; ++r) {
        float largest = 0.0f;
        for (int64_t j = 0; j < c.out; ++j)
            largest = std::max(largest, std::fabs(e4m3_to_f32(plan.b_codes[j * c.padded + r])));
        EXPECT_EQ(largest, 448.0f) << "column " << r;
    }
}

TEST(LoraFp8Tail, RefusesWhatItCannotCarry) {
    Case c = random_case(4, 64, 16, 0.01f, 5);
    c.w_scales[5] = 0.0f;
    LoraFp8Tail plan;
    std::string why;
    EXPECT_FALSE(plan_lora_fp8_tail(c.b.data(), c.rank, c.padded, c.out, c.w_scales.data(), plan, why));
    EXPECT_NE(why.find("channel 5"), std::string::npos) << why;

    c = random_case(4, 64, 16, 0.01f, 5);
    c.b[9] = std::nanf("");
    EXPECT_FALSE(plan_lora_fp8_tail(c.b.data(), c.rank, c.padded, c.out, c.w_scales.data(), plan, why));
    EXPECT_NE(why.find("not finite"), std::string::npos) << why;
}

TEST(LoraFp8Tail, AZeroColumnOfBContributesNothing) {
    Case c = random_case(3, 64, 8, 0.05f, 9);
    for (int64_t j = 0; j < c.out; ++j) c.b[j * c.rank + 1] = 0.0f;
    const LoraFp8Tail plan = plan_for(c);
    EXPECT_EQ(plan.t_factor[1], 0.0f);
    for (int64_t j = 0; j < c.out; ++j) EXPECT_EQ(plan.b_codes[j * c.padded + 1], 0) << "channel " << j;
}

}  // namespace
}  // namespace flux2
