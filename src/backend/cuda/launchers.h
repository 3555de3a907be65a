#pragma once
// The kernels' plain interface: raw device pointers, sizes and the stream, no Tensor or backend types (the
// CudaBackend member functions check shapes and call these; benchmarks and fused paths may call them directly).
// All BF16 tensors are contiguous row-major; statistics are accumulated in fp32.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace flux2::cuda {

using bf16 = __nv_bfloat16;

// cudaSuccess when this build holds kernel code the current GPU can run; cudaErrorInvalidDeviceFunction (or
// cudaErrorNoKernelImageForDevice) when its architecture is not among the compiled ones.
cudaError_t kernel_image_status();

// ---- conversion ----
void launch_f32_to_bf16(const float* in, bf16* out, int64_t n, cudaStream_t stream);
void launch_bf16_to_f32(const bf16* in, float* out, int64_t n, cudaStream_t stream);

// ---- sampling (sampler_ops.cu) ----
// x += dt * v, v = v_neg + guidance * (v - v_neg) when v_neg is given.
void launch_euler_update(float* x, const bf16* v, const bf16* v_neg, float guidance, float dt, int64_t n,
                         cudaStream_t stream);

// ---- elementwise ----
void launch_silu(const bf16* x, bf16* y, int64_t n, cudaStream_t stream);
// x [rows, 2m] -> y [rows, m]
void launch_swiglu(const bf16* x, bf16* y, int64_t rows, int64_t m, cudaStream_t stream);
// The same on column ranges: x points at the gate half of row 0 (the up half follows at + m), rows of x start
// every x_row elements; y points at the output range of row 0, rows every y_row elements.
void launch_swiglu_strided(const bf16* x, int64_t x_row, bf16* y, int64_t y_row, int64_t rows, int64_t m,
                           cudaStream_t stream);
// x [B*L, D] += gate [B, D] (row r uses gate row r / L) * y [B*L, D]
void launch_gated_residual(bf16* x, const bf16* gate, const bf16* y, int64_t rows, int64_t L, int64_t D,
                           cudaStream_t stream);

// out[j] = scales[j] * gate[j] (a layer's FP8 channel scales times a BF16 gate), n entries.
void launch_scale_by_gate(const float* scales, const bf16* gate, float* out, int64_t n, cudaStream_t stream);
// out[j, c] = b[j, c] * gate[j] for b, out [n, r]: a LoRA B whose rows carry the gate of a gated residual update.
void launch_scale_rows_by_gate(const bf16* b, const bf16* gate, bf16* out, int64_t n, int64_t r, cudaStream_t stream);

// ---- norms ----
// y = LayerNorm(x) * (1 + scale[b]) + shift[b]; x, y [B*L, D], shift/scale [B, D] (row r uses b = r / L).
void launch_layer_norm_modulate(const bf16* x, const bf16* shift, const bf16* scale, bf16* y, int64_t rows, int64_t L,
                                int64_t D, float eps, cudaStream_t stream);
// y = x / sqrt(mean(x^2) + eps) * weight; x, y [rows, D], weight [D].
void launch_rms_norm(const bf16* x, const bf16* weight, bf16* y, int64_t rows, int64_t D, float eps,
                     cudaStream_t stream);
// Per-head RMSNorm then interleaved-pair RoPE; x, y [B, L, H, Dh], weight [Dh], cos/sin [L, Dh].
void launch_rms_norm_rope(const bf16* x, const bf16* weight, const bf16* cos, const bf16* sin, bf16* y, int64_t B,
                          int64_t L, int64_t H, int64_t Dh, float eps, cudaStream_t stream);
// The same reading the heads from a column range (x points at its first column of token 0; tokens start every
// x_row elements) and writing tokens [tok, tok + L) of y [B, Lo, H, Dh]; or, when y8 is set (y unused), writing
// them to y8 as E4M3 codes of the scale *descale (a device float, see launch_qk_fp8_descale).
void launch_rms_norm_rope_strided(const bf16* x, int64_t x_row, const bf16* weight, const bf16* cos, const bf16* sin,
                                  bf16* y, uint8_t* y8, const float* descale, int64_t B, int64_t L, int64_t H,
                                  int64_t Dh, int64_t Lo, int64_t tok, float eps, cudaStream_t stream);
// *descale = 1.01 sqrt(Dh) max|w| / 448 over the gains w0 and w1 [Dh] (w1 may be null): the E4M3 scale under which
// no rms_norm_rope output with those gains saturates.
void launch_qk_fp8_descale(const bf16* w0, const bf16* w1, int64_t Dh, float* descale, cudaStream_t stream);

// ---- FP8 ----
// Where a per-row E4M3 producer writes: row r's codes at q + r * ld (ld >= the row's width: an FP8 GEMM carrying a
// LoRA branch reads rows [x | t], lora_fp8_tail.h), its scale at scales[r] = headroom * amax(|row|) / 448 (headroom
// for an all-zero row; headroom > 1 only for a layer carrying a LoRA branch, kLoraFp8TailHeadroom).
struct E4m3Rows {
    uint8_t* q;
    float* scales;
    int64_t ld;
    float headroom = 1.0f;
};
// Per-row E4M3 quantization: q = e4m3(x / scale) with E4m3Rows' scale.
void launch_quantize_rows_fp8(const bf16* x, E4m3Rows out, int64_t rows, int64_t cols, cudaStream_t stream);
// Producers fused with that quantization: the result equals launch_quantize_rows_fp8 of the BF16 output of
// launch_layer_norm_modulate / launch_swiglu_strided (same rounding to BF16 first), without writing it.
void launch_layer_norm_modulate_fp8(const bf16* x, const bf16* shift, const bf16* scale, E4m3Rows out, int64_t rows,
                                    int64_t L, int64_t D, float eps, cudaStream_t stream);
void launch_swiglu_fp8(const bf16* x, int64_t x_row, E4m3Rows out, int64_t rows, int64_t m, cudaStream_t stream);
// Rows [a | swiglu(gate, up)] quantized as one: a has ca columns (rows a_row apart), gate and up are the m columns
// at x and x + m (rows x_row apart); out's rows hold ca + m codes. The row is staged in shared memory, so ca + m is
// bounded by kSwigluBesideMaxRowBytes / 2 (the single blocks of FLUX.2: 24576 for dev).
constexpr size_t kSwigluBesideMaxRowBytes = 96 * 1024;
void launch_swiglu_beside_fp8(const bf16* a, int64_t a_row, int64_t ca, const bf16* x, int64_t x_row, int64_t m,
                              E4m3Rows out, int64_t rows, cudaStream_t stream);
// The same with the attention part as FP8 attention leaves it: packed E4M3 codes [rows, ca] and the device scalar
// *descale that turns them into values (rounded to BF16, as launch_attention_fp8_dequantize stores them: the same
// row, codes and scale as dequantizing first).
void launch_swiglu_beside_fp8_e4m3(const uint8_t* a8, const float* descale, int64_t ca, const bf16* x, int64_t x_row,
                                   int64_t m, E4m3Rows out, int64_t rows, cudaStream_t stream);

// ---- LoRA branches on E4M3 activations (lora_down_fp8.cu) ----
// t = s_x s_a (xq aq^T) for x's rows of E4M3 codes (the first k of each row, rows ldx apart, scales s_x) and A's
// a_rows rows of k codes (scales s_a; given decoded to FP16 by launch_e4m3_to_f16, with 16-byte aligned rows), in
// two kernels: launch_lora_down_fp8 writes fp32 partial sums
// [splits, rows, r_tot] over shares of k, then one of the two below adds them up. plan_lora_down_fp8 sizes the split
// for r columns of t (columns past a_rows come out 0) on a GPU of sm_count SMs.
struct LoraDownSplit {
    int64_t splits = 1, chunks_per_split = 1;  // shares of k, in chunks of 128 codes
    int64_t r_tot = 0;                         // columns of t computed (r rounded up to the tile)
    int nb = 8;                                // tile: 8 nb columns of t (4, 6 or 8)
};
LoraDownSplit plan_lora_down_fp8(int64_t rows, int64_t k, int64_t r, int sm_count);
// r_tot of that plan for rank r: the columns of t the kernels compute, and so the A scales the two below read.
int64_t lora_down_fp8_columns(int64_t r);
void launch_lora_down_fp8(const uint8_t* xq, int64_t ldx, const __half* a, int64_t a_rows, int64_t rows, int64_t k,
                          const LoraDownSplit& s, float* partials, cudaStream_t stream);
// E4M3 codes -> their values in FP16 (exact: every E4M3 value is one), n of them.
void launch_e4m3_to_f16(const uint8_t* q, __half* h, int64_t n, cudaStream_t stream);
// t [rows, r] in BF16 (for an up-projection beside the GEMM).
void launch_lora_down_bf16(const float* partials, const LoraDownSplit& s, const float* x_scales, const float* a_scales,
                           bf16* t, int64_t rows, int64_t r, cudaStream_t stream);
// t's codes beside its layer's E4M3 activations x (rows of k codes, then r more; lora_fp8_tail.h): row m's scale
// grows by the power of two p_m = lora_fp8_tail_rescale(max_c |t[m, c]| factor[c], scale) (its k codes divided by
// p_m), then x.q[m * x.ld + k + c] = e4m3(t[m, c] * factor[c] / scale) for c < r.
void launch_lora_tail_fp8(const float* partials, const LoraDownSplit& s, const float* a_scales, const float* factor,
                          E4m3Rows x, int64_t rows, int64_t k, int64_t r, cudaStream_t stream);

// ---- weight preparation (once per layer) ----
// NVFP4 (canonical: codes [rows, cols/2] hi-first, scales [rows, cols/16] E4M3 row-major) -> BF16 [rows, cols].
void launch_nvfp4_to_bf16(const uint8_t* codes, const uint8_t* block_scales, float scale_2, bf16* w, int64_t rows,
                          int64_t cols, cudaStream_t stream);
// NVFP4 -> E4M3 [rows, cols] with one fp32 scale per row (= amax of the row / 448).
void launch_nvfp4_to_fp8_rows(const uint8_t* codes, const uint8_t* block_scales, float scale_2, uint8_t* q,
                              float* row_scales, int64_t rows, int64_t cols, cudaStream_t stream);
// The same conversion with row_scales given (computed once by launch_nvfp4_to_fp8_rows): one coalesced pass, for
// the fp4-resident mode that converts each layer just before its GEMM. codes/q 8/16-byte aligned, cols % 16 == 0.
void launch_nvfp4_to_fp8_scaled(const uint8_t* codes, const uint8_t* block_scales, float scale_2,
                                const float* row_scales, uint8_t* q, int64_t rows, int64_t cols, cudaStream_t stream);
// E4M3 codes times a per-tensor scale -> BF16.
void launch_fp8_to_bf16(const uint8_t* codes, float scale, bf16* w, int64_t n, cudaStream_t stream);
void launch_f16_to_bf16(const uint16_t* in, bf16* out, int64_t n, cudaStream_t stream);
void launch_fill_f32(float* p, float value, int64_t n, cudaStream_t stream);

// ---- text encoder ops ----
// Rotate-half RoPE: x, y [B, L, H, Dh]; cos/sin [L, Dh], or [B, L, Dh] when per_sample.
void launch_rope_half(const bf16* x, const bf16* cos, const bf16* sin, bf16* y, int64_t B, int64_t L, int64_t H,
                      int64_t Dh, bool per_sample, cudaStream_t stream);
// Causal grouped-query attention with a key padding mask: q [B, L, H, Dh], k/v [B, L, Hkv, Dh], key_mask [B, L]
// (nonzero = real token) -> o [B, L, H*Dh]; a query with no visible key outputs zeros. Dh <= 256.
void launch_causal_attention(const bf16* q, const bf16* k, const bf16* v, const bf16* key_mask, bf16* o, int64_t B,
                             int64_t L, int64_t H, int64_t Hkv, int64_t Dh, cudaStream_t stream);
// cuDNN's half of it (causal_attention_cudnn.h): the key padding mask as an additive bias [B, L, row] (0 or a
// large negative number per key, every query row alike), and the zeroing of the queries that see no real key.
void launch_key_padding_bias(const bf16* key_mask, bf16* bias, int64_t B, int64_t L, int64_t row, cudaStream_t stream);
void launch_zero_unattended_queries(const bf16* key_mask, bf16* o, int64_t B, int64_t L, int64_t width,
                                    cudaStream_t stream);

// ---- image ops (VAE) ----
// Patch matrix of one image for rows [row0, row0 + rows) of the output: col [rows * Wo, Cin * kh * kw], one row
// per output pixel (zero outside the padded input). x is one image [Cin, H, W].
void launch_im2col(const bf16* x, bf16* col, int64_t Cin, int64_t H, int64_t W, int64_t kh, int64_t kw, int stride,
                   int padding, int64_t Wo, int64_t row0, int64_t rows, cudaStream_t stream);
// out [outer, N, M] = in [outer, M, N] transposed, plus bias[n] on output row n when bias is not null.
void launch_transpose_last2(const bf16* in, const bf16* bias, bf16* out, int64_t outer, int64_t M, int64_t N,
                            cudaStream_t stream);
void launch_pad2d(const bf16* x, bf16* y, int64_t planes, int64_t H, int64_t W, int left, int top, int64_t Ho,
                  int64_t Wo, cudaStream_t stream);
void launch_upsample_nearest2x(const bf16* x, bf16* y, int64_t planes, int64_t H, int64_t W, cudaStream_t stream);
// y [rows, N] = x + bias [N]
void launch_add_bias(const bf16* x, const bf16* bias, bf16* y, int64_t rows, int64_t N, cudaStream_t stream);
// y [planes, S] += bias[plane % C] in place: the per-channel bias of an NCHW tensor (planes = B * C).
void launch_add_channel_bias(bf16* y, const bf16* bias, int64_t planes, int64_t C, int64_t S, cudaStream_t stream);
// GroupNorm over x [B, C, S] (groups of C / G contiguous channels), affine, optional SiLU. `stats` is scratch for
// 2 * B * G doubles.
void launch_group_norm(const bf16* x, const bf16* weight, const bf16* bias, bf16* y, double* stats, int64_t B,
                       int64_t C, int64_t S, int64_t G, float eps, bool silu, cudaStream_t stream);

}  // namespace flux2::cuda
