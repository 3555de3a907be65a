#pragma once
// Attention for head dims cuDNN's fused SDPA does not take (above 256: the FLUX.2 VAE's single-head mid-block
// attention has Dh = 512): S = Q K^T in fp32 by cuBLAS, a row softmax into BF16 P, then O = P V by cuBLAS. Queries
// go in chunks so that S stays within a fixed budget whatever the image size (16k tokens at 1024^2, 65k at 2048^2).
#include <cuda_bf16.h>

#include <cstdint>
#include <memory>

#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

class WideHeadAttention {
public:
    explicit WideHeadAttention(std::shared_ptr<Stream> stream);
    ~WideHeadAttention();
    WideHeadAttention(const WideHeadAttention&) = delete;
    WideHeadAttention& operator=(const WideHeadAttention&) = delete;

    // As CudnnSdpa::run: q, k, v, o BF16 [B, L, H, Dh] with token strides H*Dh (q, k), v_row and o_row.
    void run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
             int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row);

private:
    std::shared_ptr<Stream> stream_;
    void* handle_ = nullptr;  // cublasHandle_t
};

}  // namespace flux2::cuda
