#pragma once
// The two GEMMs of the linear layers, through cuBLASLt: BF16 x BF16 and E4M3 x E4M3 with per-row scales on both
// operands, each with fp32 accumulation and BF16 output. Row-major shapes: y [m, n] = x [m, k] w [n, k]^T
// (tokens m, output features n). The algorithm is chosen once per shape (the fastest of the heuristic's candidates,
// timed on the first call) and cached.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

class CublasLtGemm {
public:
    // fast_fp8_accumulation: the FP8 GEMMs keep their partial sums in the tensor cores' accumulator throughout
    // (BackendOptions::fp8_accumulation); otherwise they are promoted to fp32 registers at intervals.
    CublasLtGemm(std::shared_ptr<Stream> stream, bool fast_fp8_accumulation);
    ~CublasLtGemm();
    CublasLtGemm(const CublasLtGemm&) = delete;
    CublasLtGemm& operator=(const CublasLtGemm&) = delete;

    // With beta = 1 the product is added to y (C = D = y: the LoRA branch accumulates into the base output).
    void bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int64_t m, int64_t n, int64_t k,
              float beta = 0.0f);

    // y[i, j] = x_scales[i] * w_scales[j] * sum_k xq[i, k] wq[j, k]. k must be a multiple of 16 and the code
    // pointers 16-byte aligned (cuBLASLt's FP8 requirements).
    // With beta = 1 the product is added to y (y = product + y, one rounding to BF16). ldy: y's row stride in
    // elements (0: n), for a product that fills n columns of a wider output.
    void fp8(const uint8_t* xq, const float* x_scales, const uint8_t* wq, const float* w_scales, __nv_bfloat16* y,
             int64_t m, int64_t n, int64_t k, float beta = 0.0f, int64_t ldy = 0);

private:
    enum class Kind { bf16, fp8 };
    struct Plan;
    // For FP8 the scale vectors are part of the descriptor the heuristic validates, so the first call's pointers
    // are set before it runs; later calls replace them.
    Plan& plan(Kind kind, int64_t m, int64_t n, int64_t k, int64_t ldy, const float* w_scales = nullptr,
               const float* x_scales = nullptr);
    void run(Plan& p, const void* x, const void* w, void* y, float beta = 0.0f);
    // Times the plan's candidates on these operands once and keeps the fastest (gemm_cublaslt.cpp says why).
    void tune(Plan& p, const void* x, const void* w, void* y, float beta);

    std::shared_ptr<Stream> stream_;
    bool fast_fp8_accumulation_;
    void* handle_ = nullptr;  // cublasLtHandle_t (kept out of this header)
    std::shared_ptr<void> workspace_;
    size_t workspace_bytes_ = 0;
    std::map<std::tuple<Kind, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace flux2::cuda
