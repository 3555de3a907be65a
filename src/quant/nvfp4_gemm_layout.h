#pragma once
// The operand layout of the block-scaled FP4 GEMM (cuBLASLt CUDA_R_4F_E2M1 with VEC16_UE4M3 scales, the same as
// CUTLASS sm100/sm120 and flashinfer "128x4"), and the conversion of a canonical Nvfp4Weight into it:
//   codes  [rows, cols/2] row-major (K-major), element 2i in the LOW nibble (the canonical form is hi-first);
//   scales [round_up(rows,128) * round_up(cols/16,4)] E4M3 bytes in the 128x4 swizzle, zero padding;
//   the fp32 per-tensor factor (weight_scale_2, times the activations' tensor scale) goes into the GEMM's alpha.
// The index and rounding helpers are inline and host/device, so the activation quantization kernel and its CPU
// reference share one definition.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/host_device.h"
#include "quant/linear_weight.h"

namespace flux2 {

// Byte offset of scale (r, c) in the 128x4 swizzled buffer of a scale matrix with `cols` columns (the same formula
// as swizzled_scale_offset in quant/nvfp4.h, here usable in device code).
FLUX2_HOST_DEVICE inline int64_t fp4_scale_offset(int64_t r, int64_t c, int64_t cols) {
    const int64_t col_tiles = (cols + 3) / 4;
    return (((r / 128) * col_tiles + c / 4) * 32 + r % 32) * 16 + ((r % 128) / 32) * 4 + c % 4;
}

// Bytes of the swizzled scale buffer of a [rows, cols] scale matrix (padded to [round_up(rows,128), round_up(cols,4)]).
FLUX2_HOST_DEVICE inline int64_t fp4_scale_bytes(int64_t rows, int64_t cols) {
    return (rows + 127) / 128 * 128 * ((cols + 3) / 4 * 4);
}

// Elements 2i (low nibble) and 2i+1 (high nibble) as one byte: the CUDA_R_4F_E2M1 / PTX packing.
FLUX2_HOST_DEVICE inline uint8_t fp4_pack(uint8_t even_code, uint8_t odd_code) {
    return static_cast<uint8_t>((even_code & 0xF) | ((odd_code & 0xF) << 4));
}

// float -> E2M1 code, round to nearest even, saturating at +-6 (NaN -> 6 with its sign, as f32_to_e2m1). The
// ties (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5) go to the code with an even mantissa bit.
FLUX2_HOST_DEVICE inline uint8_t fp4_e2m1_code(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof(bits));
    const uint8_t sign = (bits >> 31) ? 0x8 : 0;  // the sign bit, so -0 and -NaN keep it
    const float a = v < 0.0f ? -v : v;
    uint8_t code;
    if (a != a) code = 7;
    else if (a <= 0.25f) code = 0;
    else if (a < 0.75f) code = 1;
    else if (a <= 1.25f) code = 2;
    else if (a < 1.75f) code = 3;
    else if (a <= 2.5f) code = 4;
    else if (a < 3.5f) code = 5;
    else if (a <= 5.0f) code = 6;
    else code = 7;
    return static_cast<uint8_t>(sign | code);
}

// The GEMM-ready form of an NVFP4 weight [rows, cols] (cols a multiple of 16).
struct Nvfp4GemmWeight {
    std::vector<uint8_t> codes;   // [rows, cols/2], low nibble first
    std::vector<uint8_t> scales;  // fp4_scale_bytes(rows, cols/16), swizzled
    float weight_scale_2 = 1.0f;  // part of the GEMM alpha
};

// Canonical (hi-first codes, row-major scales) -> GEMM layout. Checks the byte counts against the shape.
Nvfp4GemmWeight prepare_nvfp4_gemm_weight(const Nvfp4Weight& w, int64_t rows, int64_t cols, const std::string& name);

// NVFP4 activations in the GEMM layout (the CPU reference of the device quantizer): per 16-element block of
// x [rows, cols], s = e4m3(min(amax / 6 / tensor_scale, 448)), codes = e2m1(clamp(x / (tensor_scale * s), +-6)),
// exactly fake_quantize_nvfp4's operations (a block with tensor_scale * s == 0 gets zero codes).
struct Nvfp4GemmActivations {
    std::vector<uint8_t> codes;   // [rows, cols/2], low nibble first
    std::vector<uint8_t> scales;  // fp4_scale_bytes(rows, cols/16), swizzled, zero padding
};
Nvfp4GemmActivations quantize_nvfp4_gemm_activations(const float* x, int64_t rows, int64_t cols, float tensor_scale);

// What the GEMM reads: value[r, k] = e2m1(code) * e4m3(block scale), without the per-tensor factor (tests).
std::vector<float> decode_nvfp4_gemm_operand(const uint8_t* codes, const uint8_t* swizzled_scales, int64_t rows,
                                             int64_t cols);

}  // namespace flux2
