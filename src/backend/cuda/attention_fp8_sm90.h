#pragma once
// flux2's own FP8 attention for head dim 128 on Hopper (attention_fp8_sm90.cuh holds the kernel and says how it
// works): E4M3 Q and K as [B, L, H, 128] codes, V as the transposed chunks launch_attention_fp8_quantize_vt writes,
// one descale per tensor on the device; output in BF16 or E4M3 with V's scale. Fp8Attention (attention_fp8.h) runs
// it with `--attention fp8-flux2`: today it is 6-12% slower than cuDNN's FP8 SDPA (docs/PERFORMANCE.md).
#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda/launchers.h"

namespace flux2::cuda {

constexpr int64_t kAttentionFp8Sm90HeadDim = 128;

// Whether this build holds the kernel for the current GPU: an sm_90 GPU and sm_90a among the compiled architectures
// (probed once per device; another architecture's build of the kernel does nothing).
bool attention_fp8_sm90_available();

// Bytes of V's transposed codes for [B, L, H, 128]: L padded to a multiple of 64 tokens per head.
int64_t attention_fp8_vt_bytes(int64_t B, int64_t L, int64_t H);

// vt8 (attention_fp8_vt_bytes) = V [B, L, H, 128] BF16 (tokens v_row apart) as E4M3 codes of V / (amax |V| / 448),
// transposed into the kernel's chunks; fills scales[kDescaleV], [kScaleO] and [kDescaleO] (attention_fp8_kernels.h);
// partials: kAttentionFp8AmaxBlocks floats of scratch. Two kernels (the amax, then the conversion), no host sync.
void launch_attention_fp8_quantize_vt(const bf16* v, int64_t v_row, uint8_t* vt8, float* partials, float* scales,
                                      int64_t B, int64_t L, int64_t H, cudaStream_t stream);

// softmax(Q K^T / sqrt(128)) V for q8, k8 packed [B, L, H, 128] codes (16-byte aligned) and vt8 from
// launch_attention_fp8_quantize_vt, with the codes' descales on the device. The result goes to o in BF16 (tokens
// o_row elements apart, a multiple of 2) or, with o null, to o8 as packed E4M3 codes of O / *v_descale.
void launch_attention_fp8_sm90(const uint8_t* q8, const float* q_descale, const uint8_t* k8, const float* k_descale,
                               const uint8_t* vt8, const float* v_descale, bf16* o, int64_t o_row, uint8_t* o8,
                               int64_t B, int64_t L, int64_t H, cudaStream_t stream);

}  // namespace flux2::cuda
