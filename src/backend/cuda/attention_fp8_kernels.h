#pragma once
// Row passes of the FP8 attention path (attention_fp8_kernels.cu). Tensors are [rows, width] with rows = B * L
// tokens and width = H * Dh a multiple of 8; a `*_row` argument is the element distance between consecutive
// tokens (wider than `width` for a column range of a wider tensor), pointers 16-byte aligned.
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/launchers.h"

namespace flux2::cuda {

// The float scalars cuDNN's FP8 SDPA reads from device memory (per-tensor scales, "descale" = amax / 448 multiplies
// E4M3 codes back to values), written by launch_attention_fp8_quantize, and its amax outputs.
enum AttentionFp8Scale : int {
    kDescaleQ = 0,
    kDescaleK,
    kDescaleV,
    kDescaleS,  // the softmax probabilities' descale
    kScaleS,
    kScaleO,    // O values -> E4M3 codes
    kDescaleO,  // E4M3 codes of O -> values
    kAmaxS,     // written by cuDNN
    kAmaxO,     // written by cuDNN
    kAttentionFp8ScaleCount
};

// Partial maxima per input tensor that launch_attention_fp8_quantize needs as scratch (floats: 3 x this).
constexpr int kAttentionFp8AmaxBlocks = 256;

// q8/k8/v8 [rows, width] E4M3 (packed) = q/k/v / (amax of that tensor / 448); q and k are packed, v has rows
// v_row apart. Fills scales[kDescaleQ..kDescaleO]. Two kernels (the amax, then the conversion), no host sync.
void launch_attention_fp8_quantize(const bf16* q, const bf16* k, const bf16* v, int64_t v_row, uint8_t* q8, uint8_t* k8,
                                   uint8_t* v8, float* partials, float* scales, int64_t rows, int64_t width,
                                   cudaStream_t stream);

// The same for v alone (q and k arrive as E4M3 from the norm kernel, with their own scales): fills
// scales[kDescaleV..kDescaleO]; partials needs kAttentionFp8AmaxBlocks floats.
void launch_attention_fp8_quantize_v(const bf16* v, int64_t v_row, uint8_t* v8, float* partials, float* scales,
                                     int64_t rows, int64_t width, cudaStream_t stream);

// Q and K alone (packed), for an attention that takes V in another form: fills scales[kDescaleQ], [kDescaleK];
// partials needs 2 x kAttentionFp8AmaxBlocks floats.
void launch_attention_fp8_quantize_qk(const bf16* q, const bf16* k, uint8_t* q8, uint8_t* k8, float* partials,
                                      float* scales, int64_t rows, int64_t width, cudaStream_t stream);

// The amax partials of v alone (kAttentionFp8AmaxBlocks floats), for a quantizer of its own.
void launch_attention_fp8_amax_v(const bf16* v, int64_t v_row, float* partials, int64_t rows, int64_t width,
                                 cudaStream_t stream);

// o (rows o_row apart) = o8 [rows, width] (packed E4M3) * *descale (O's, scales + kDescaleO), rounded to BF16.
void launch_attention_fp8_dequantize(const uint8_t* o8, const float* descale, bf16* o, int64_t o_row, int64_t rows,
                                     int64_t width, cudaStream_t stream);

// row_scales[r] = *descale for r < rows: O's codes as the rows of an FP8 GEMM's input, each with the tensor's scale.
void launch_attention_fp8_row_scales(const float* descale, float* row_scales, int64_t rows, cudaStream_t stream);

// sums[0] = sum (a - b)^2, sums[1] = sum b^2 over [rows, width] (sums zeroed first): the relative L2 difference of
// an attention output a to the BF16 one b is sqrt(sums[0] / sums[1]).
void launch_attention_error_sums(const bf16* a, int64_t a_row, const bf16* b, int64_t b_row, float* sums, int64_t rows,
                                 int64_t width, cudaStream_t stream);

}  // namespace flux2::cuda
