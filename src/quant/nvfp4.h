#pragma once
// NVFP4 layout helpers: nibble order, the cuBLAS/CUTLASS 128x4 block-scale swizzle, activation quantization.
#include <cstdint>
#include <vector>

namespace flux2 {

constexpr int kNvfp4Block = 16;            // elements per block scale
constexpr float kE2m1Max = 6.0f;
constexpr float kE4m3Max = 448.0f;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Byte offset of logical scale (r, c) in the swizzled buffer of a [rows, cols] scale matrix
// (padded to [round_up(rows,128), round_up(cols,4)]): 512-byte tiles of 128 rows x 4 columns, row-block major.
int64_t swizzled_scale_offset(int64_t r, int64_t c, int64_t cols);

// swizzled [round_up(rows,128) * round_up(cols,4)] bytes -> row-major [rows, cols] (padding dropped)
std::vector<uint8_t> unswizzle_scales(const uint8_t* swizzled, int64_t rows, int64_t cols);
// row-major [rows, cols] -> swizzled, zero padding
std::vector<uint8_t> swizzle_scales(const uint8_t* linear, int64_t rows, int64_t cols);
// Rows [row_begin, row_begin + row_count) of a swizzled buffer, still swizzled; row_begin must be a multiple of 128.
std::vector<uint8_t> slice_swizzled_rows(const uint8_t* swizzled, int64_t rows, int64_t cols, int64_t row_begin,
                                         int64_t row_count);

// (b >> 4) | (b << 4) for every byte: converts between hi-first (BFL) and lo-first (ModelOpt/CUTLASS) packing.
void swap_nibbles(uint8_t* bytes, int64_t n);

// NVFP4 activation fake-quantization (the CPU reference of the Blackwell W4A4 path), in place on x [rows, cols]:
// per 16-element block s = e4m3(min(amax_blk / 6 / tensor_scale, 448)), t = tensor_scale * s,
// x = e2m1(clamp(x / t, +-6)) * t (t == 0: the block becomes 0), in comfy-kitchen's fp32 order of operations.
// cols must be a multiple of 16.
void fake_quantize_nvfp4(float* x, int64_t rows, int64_t cols, float tensor_scale);
// The dynamic tensor scale used when a layer has no input_scale: amax(|x|) / (448 * 6).
float dynamic_nvfp4_scale(const float* x, int64_t n);

}  // namespace flux2
