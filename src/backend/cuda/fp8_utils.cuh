#pragma once
// E4M3 / E2M1 codecs on the device (OCP FP8 E4M3 "fn": max 448, no inf; NVFP4 E2M1: {0, .5, 1, 1.5, 2, 3, 4, 6}).
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

// 4-bit E2M1 code (sign in bit 3, 2 exponent bits with bias 1, 1 mantissa bit).
__device__ __forceinline__ float e2m1_to_float(uint32_t code) {
    const uint32_t e = (code >> 1) & 3u, m = code & 1u;
    const float mag = e == 0 ? 0.5f * static_cast<float>(m) : static_cast<float>(1u << (e - 1)) * (1.0f + 0.5f * m);
    return (code & 8u) ? -mag : mag;
}

}  // namespace flux2::cuda
