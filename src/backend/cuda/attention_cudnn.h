#pragma once
// Joint attention through cuDNN's fused SDPA (cudnn-frontend graph API): BF16 in and out, fp32 softmax, non-causal,
// unmasked, scale 1/sqrt(Dh). One execution plan per shape, built on first use and cached.
#include <cuda_bf16.h>

#include <cstdint>
#include <memory>

#include "backend/cuda/attention_wide_head.h"
#include "backend/cuda/cudnn_sdpa_graphs.h"
#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

class CudnnSdpa {
public:
    explicit CudnnSdpa(std::shared_ptr<Stream> stream);
    ~CudnnSdpa();
    CudnnSdpa(const CudnnSdpa&) = delete;
    CudnnSdpa& operator=(const CudnnSdpa&) = delete;

    // q, k, v, o: BF16 [B, L, H, Dh] (o is therefore [B, L, H*Dh]); Dh a multiple of 8. Head dims above 256 (the
    // VAE's mid-block attention) go to WideHeadAttention, logged once.
    // v_row / o_row: elements between consecutive tokens of v / o when they are column ranges of wider rows
    // (0 = packed, H * Dh); the pointers then point at the range's first column (16-byte aligned).
    void run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
             int64_t L, int64_t H, int64_t Dh, int64_t v_row = 0, int64_t o_row = 0);

private:
    std::shared_ptr<Stream> stream_;
    SdpaGraphs graphs_;  // one per (B, L, H, Dh, v_row, o_row)
    std::unique_ptr<WideHeadAttention> wide_;
};

}  // namespace flux2::cuda
