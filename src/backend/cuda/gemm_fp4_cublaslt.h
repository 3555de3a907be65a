#pragma once
// The Blackwell block-scaled FP4 GEMM through cuBLASLt: y [m, n] = alpha * x [m, k] w [n, k]^T with both operands
// NVFP4 (CUDA_R_4F_E2M1 codes, element 2i in the low nibble; E4M3 scales per 16 elements in the 128x4 swizzle,
// CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3), fp32 accumulation, BF16 output. alpha and beta are read from device
// memory (CUBLASLT_POINTER_MODE_DEVICE), so a tensor scale computed on the device needs no host sync.
// Needs a GPU of compute capability 10.x or 12.x and cuBLAS 12.8 or newer. Kept apart from CublasLtGemm (its own
// handle and workspace) because only the fp4 precision creates it.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

class CublasLtFp4Gemm {
public:
    explicit CublasLtFp4Gemm(std::shared_ptr<Stream> stream);
    ~CublasLtFp4Gemm();
    CublasLtFp4Gemm(const CublasLtFp4Gemm&) = delete;
    CublasLtFp4Gemm& operator=(const CublasLtFp4Gemm&) = delete;

    // xq [m, k/2], wq [n, k/2] codes; x_scales / w_scales swizzled for [m, k/16] / [n, k/16]; alpha_beta points
    // at {alpha, beta} on the device (beta must be 0: y is not read). k must be a multiple of 32 and every
    // pointer 16-byte aligned.
    void run(const uint8_t* xq, const uint8_t* x_scales, const uint8_t* wq, const uint8_t* w_scales,
             const float* alpha_beta, __nv_bfloat16* y, int64_t m, int64_t n, int64_t k);

private:
    struct Plan;
    Plan& plan(int64_t m, int64_t n, int64_t k, const uint8_t* w_scales, const uint8_t* x_scales);

    std::shared_ptr<Stream> stream_;
    void* handle_ = nullptr;  // cublasLtHandle_t
    std::shared_ptr<void> workspace_;
    size_t workspace_bytes_ = 0;
    std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace flux2::cuda
