#pragma once
// The text encoders' causal grouped-query attention through cuDNN's fused SDPA (BF16 in and out, fp32 softmax):
// cuDNN's top-left causal mask plus an additive BF16 bias that holds the key padding mask (0 for a real key, a
// large negative number for a padding key). A padding mask on the left (Mistral's tokenizer) is no prefix length,
// so cuDNN's sequence-length masks cannot express it; the bias can, for either side. One execution plan per shape,
// built on first use and cached.
#include <cuda_bf16.h>

#include <cstdint>
#include <memory>
#include <set>
#include <tuple>

#include "backend/cuda/cudnn_sdpa_graphs.h"
#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

class CudnnCausalSdpa {
public:
    explicit CudnnCausalSdpa(std::shared_ptr<Stream> stream);
    ~CudnnCausalSdpa();
    CudnnCausalSdpa(const CudnnCausalSdpa&) = delete;
    CudnnCausalSdpa& operator=(const CudnnCausalSdpa&) = delete;

    // Whether cuDNN has a plan for this shape (built and cached here). A shape it has none for is logged with the
    // reason the first time; the caller then runs its own kernel.
    bool has_plan(int64_t B, int64_t L, int64_t H, int64_t Hkv, int64_t Dh);

    // q [B, L, H, Dh], k/v [B, L, Hkv, Dh], o [B, L, H*Dh], all packed BF16; bias [B, L, bias_row] BF16 (row i of
    // batch b: the additive mask of query i over the L keys; bias_row >= L, a multiple of 8). Rows whose keys are
    // all masked come out as an average of masked values: the caller zeroes them.
    void run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* bias,
             __nv_bfloat16* o, int64_t B, int64_t L, int64_t H, int64_t Hkv, int64_t Dh, int64_t bias_row);

    // The bias row stride run() expects for L keys: L rounded up to 8 (16-byte aligned rows).
    static int64_t bias_row(int64_t L) { return (L + 7) / 8 * 8; }

private:
    void ensure_plan(int64_t B, int64_t L, int64_t H, int64_t Hkv, int64_t Dh);

    SdpaGraphs graphs_;                                                          // one per (B, L, H, Dh, Hkv)
    std::set<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> no_plan_;  // shapes refused (and logged)
};

}  // namespace flux2::cuda
