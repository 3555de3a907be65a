#pragma once
// E4M3 / E2M1 codecs on the device (OCP FP8 E4M3 "fn": max 448, no inf; NVFP4 E2M1: {0, .5, 1, 1.5, 2, 3, 4, 6}).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cstdint>

namespace flux2::cuda {

constexpr float kE4m3MaxF = 448.0f;

__device__ __forceinline__ float e4m3_to_float(uint8_t bits) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(bits, __NV_E4M3)));
}

// float -> E4M3 code (round to nearest even, saturating to +-448).
__device__ __forceinline__ uint8_t float_to_e4m3(float v) {
    return __nv_cvt_float_to_fp8(v, __NV_SATFINITE, __NV_E4M3);
}

// Two floats -> two E4M3 codes (round to nearest even, saturating to +-448); a in the low byte.
__device__ __forceinline__ uint16_t float2_to_e4m3x2(float a, float b) {
    return __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}

// Per-row scale of the FP8 activation quantizer: the row's amax maps to the top of the E4M3 range (to 448 / headroom
// where a producer leaves room, E4m3Rows).
__device__ __forceinline__ float e4m3_row_scale(float amax, float headroom = 1.0f) {
    return (amax > 0.0f ? amax / kE4m3MaxF : 1.0f) * headroom;
}

// W values times the reciprocal of the scale -> W E4M3 codes at q (8-byte store when W == 8). Every FP8 activation
// producer uses this, so fused and standalone quantization give the same codes. One reciprocal, then products: an
// IEEE division per element costs these memory-bound kernels more ALU time than their loads and stores take, and
// v * (1 / s) differs from v / s by at most an fp32 ulp, far below E4M3's 3 mantissa bits.
template <int W>
__device__ __forceinline__ void store_e4m3(uint8_t* q, const float (&v)[W], float scale) {
    const float inv = 1.0f / scale;
    if constexpr (W == 8) {
        uint2 packed;
        uint16_t* p = reinterpret_cast<uint16_t*>(&packed);
#pragma unroll
        for (int j = 0; j < 4; ++j) p[j] = float2_to_e4m3x2(v[2 * j] * inv, v[2 * j + 1] * inv);
        *reinterpret_cast<uint2*>(q) = packed;
    } else {
#pragma unroll
        for (int j = 0; j < W; ++j) q[j] = float_to_e4m3(v[j] * inv);
    }
}

// The value a BF16 store and reload gives (fused producers quantize what the unfused op would have stored).
__device__ __forceinline__ float round_to_bf16(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }

// 4-bit E2M1 code (sign in bit 3, 2 exponent bits with bias 1, 1 mantissa bit).
__device__ __forceinline__ float e2m1_to_float(uint32_t code) {
    const uint32_t e = (code >> 1) & 3u, m = code & 1u;
    const float mag = e == 0 ? 0.5f * static_cast<float>(m) : static_cast<float>(1u << (e - 1)) * (1.0f + 0.5f * m);
    return (code & 8u) ? -mag : mag;
}

}  // namespace flux2::cuda
