#pragma once
// Shape rules of the Backend ops that every backend applies the same way: each function checks its inputs (the
// error names the op, the shapes and what was expected) and returns the sizes the implementation works with, so
// the CPU and CUDA entries cannot drift apart.
#include <cstdint>

#include "tensor/tensor.h"

namespace flux2 {

struct Conv2dShape {
    int64_t B, cin, H, W;    // input [B, cin, H, W]
    int64_t cout, kh, kw;    // weight [cout, cin, kh, kw]
    int64_t Hp, Wp;          // padded input
    int64_t Ho, Wo;          // output [B, cout, Ho, Wo]
    int64_t P, K;            // output pixels per channel, patch length cin * kh * kw
};
Conv2dShape conv2d_shape(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding);

// Output shape of pad2d: the last two dims grow by (top + bottom, left + right).
Shape pad2d_shape(const Tensor& x, int left, int right, int top, int bottom);

struct CausalAttentionShape {
    int64_t B, L, H, Dh, Hkv;  // q [B, L, H, Dh], k/v [B, L, Hkv, Dh], key_mask [B, L]
};
CausalAttentionShape causal_attention_shape(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask);

struct RopeHalfShape {
    int64_t B, L, H, Dh;
    bool per_sample;  // cos/sin [B, L, Dh] rather than [L, Dh]
};
RopeHalfShape rope_half_shape(const Tensor& x, const Tensor& cos, const Tensor& sin);

}  // namespace flux2
