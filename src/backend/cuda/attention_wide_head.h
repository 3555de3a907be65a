#pragma once
// Attention for head dims cuDNN's fused SDPA does not take (above 256: the FLUX.2 VAE's single-head mid-block
// attention has Dh = 512): S = Q K^T in fp32 by cuBLAS, a row softmax into BF16 P, then O = P V by cuBLAS. Queries
// go in chunks so that S stays within a fixed budget whatever the image size (16k tokens at 1024^2, 65k at 2048^2).
// The default budget is small enough that the VAE decode's attention does not set its peak (at 1024^2: 4 chunks of
// 4096 queries, 0.4 GB with the probabilities, where one chunk took 1.6 GB, more than the rest of the decode's
// working set); each chunk's GEMMs stay large ([4096 x 16384] x 512).
#include <cuda_bf16.h>

#include <cstdint>
#include <memory>

#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

class WideHeadAttention {
public:
    static constexpr int64_t kScoreBudgetBytes = int64_t{256} << 20;

    // Holds at most `score_budget_bytes` of fp32 scores at once (at least one query row's).
    explicit WideHeadAttention(std::shared_ptr<Stream> stream, int64_t score_budget_bytes = kScoreBudgetBytes);
    ~WideHeadAttention();
    WideHeadAttention(const WideHeadAttention&) = delete;
    WideHeadAttention& operator=(const WideHeadAttention&) = delete;

    // As CudnnSdpa::run: q, k, v, o BF16 [B, L, H, Dh] with token strides H*Dh (q, k), v_row and o_row.
    void run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
             int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row);

private:
    std::shared_ptr<Stream> stream_;
    int64_t score_budget_bytes_;
    void* handle_ = nullptr;  // cublasHandle_t
};

}  // namespace flux2::cuda
