#pragma once
// A LoRA branch carried inside an FP8 GEMM: the rank-r term joins the layer's K dimension,
//   y = s_x s_w [xq | tq] [wq | bq]^T = x W^T + t (sB)^T,   t = x A^T,
// so the branch costs r more K-columns of the base GEMM instead of a second GEMM writing the whole output. Both
// halves share the per-token activation scale s_x and the per-channel weight scale s_w, and E4M3 holds at most 448:
//  * B's codes: bq_jr = (sB)_jr / (f_r s_w[j]) with f_r = max_j |(sB)_jr| / (448 s_w[j]), so each column of B fills
//    E4M3's range exactly.
//  * t's codes: tq_r = t_r f_r / s_x. The product is then exact by construction: tq_r bq_jr s_x s_w = t_r (sB)_jr.
//    t is only known after x was quantized (it is computed from x's codes), so the kernel writing t's codes checks
//    each token: where some tq_r would pass 448, that token's scale s_x is multiplied by the smallest power of two
//    that fits and its x codes are divided by it (exact but for codes that become subnormal, whose rounding is
//    below the row's ordinary 3-bit rounding unless the power is large). No code ever saturates, whatever the
//    input (LORA.md, "How a LoRA is applied").
#include <cstdint>
#include <string>
#include <vector>

#include "core/host_device.h"

namespace flux2 {

// The activations of a layer carrying a branch are quantized with this much headroom (scale amax / 448 times it, so
// their largest code is 448 / 4): most tokens' t codes then fit without rescaling, which would cost a pass over the
// token's codes. E4M3 keeps its relative precision under a power-of-two shift; only values below 2^-6 of a code,
// i.e. under 1.4e-4 of the row's largest, fall into its subnormals.
constexpr float kLoraFp8TailHeadroom = 4.0f;

struct LoraFp8Tail {
    std::vector<float> t_factor;   // [rank_padded]: tq[m, r] = e4m3(t[m, r] * t_factor[r] / s_x[m]); f_r above
    std::vector<uint8_t> b_codes;  // E4M3 [out, rank_padded]: the GEMM's weight tail beside wq
};

// b: [out, rank] (strength x alpha / rank folded in), w_scales: [out] (the FP8 weight's per-channel scales).
// Padded ranks and all-zero columns of B get zero codes and factors. Returns false and says why when a scale is not
// positive or B holds a value that is not finite.
bool plan_lora_fp8_tail(const float* b, int64_t rank, int64_t rank_padded, int64_t out, const float* w_scales,
                        LoraFp8Tail& plan, std::string& why);

// The factor p >= 1 (a power of two) by which a token's scale s_x grows so that every one of its t codes,
// |t_r| t_factor[r] / (s_x p), stays within 448 (largest = max_r |t_r| t_factor[r]). Shared by the kernel writing t's
// codes and the host emulation in tests. Bounded: a non-finite t leaves the scale as it is (and shows as NaN/Inf in
// the output).
FLUX2_HOST_DEVICE inline float lora_fp8_tail_rescale(float largest, float s_x) {
    float p = 1.0f;
    for (int i = 0; i < 127 && largest / (s_x * p) > 448.0f; ++i) p *= 2.0f;
    return p;
}

}  // namespace flux2
