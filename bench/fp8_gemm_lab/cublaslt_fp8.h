// The FP8 GEMM labs' common ground: the model's FP8 GEMM shapes, random E4M3 operands, and cuBLASLt set up exactly
// as src/backend/cuda/gemm_cublaslt.cpp does (E4M3 x E4M3, per-feature x per-token OUTER_VEC_32F scales, fast
// accumulation, BF16 output; beta 1 for the output projections into the residual stream).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace fp8_lab {

inline void check(int status, const char* what) {
    if (status != 0) {
        std::fprintf(stderr, "%s failed: %d\n", what, status);
        std::exit(1);
    }
}

struct Shape {
    long m, n, k;   // row-major y [m, n] = x [m, k] w [n, k]^T: tokens, output features, input features
    bool residual;  // beta 1 (the output projections, into the residual stream)
};
// dev 1024² (single block: linear1 parts, linear2; double block image stream), then klein-4B and klein-9B.
inline const Shape kShapes[] = {{4608, 36864, 6144, false}, {4608, 6144, 24576, true}, {4608, 18432, 6144, false},
                                {4096, 36864, 6144, false}, {4096, 6144, 18432, true}, {4608, 18432, 3072, false},
                                {4608, 3072, 12288, true},  {4608, 9216, 3072, false}, {4608, 24576, 4096, false},
                                {4608, 4096, 16384, true},  {4608, 12288, 4096, false}};

inline double tflops(const Shape& s, float us) { return 2.0 * s.m * s.n * s.k / us / 1e6; }

// RUNS=N: launches per timing (default 10). Hundreds hold the card at its power limit, as a step does: a
// configuration that draws less power can then win although it is slower at the top clock.
inline int timed_runs() { return std::getenv("RUNS") ? std::max(1, std::atoi(std::getenv("RUNS"))) : 10; }

// Device buffers for the largest of `shapes`: random E4M3 codes (never the NaN pattern S.1111.111; constant
// operands would draw less power than the model's and run faster), scales of 0.005-0.02 that differ from token to
// token and from feature to feature (so that a GEMM applying them along the wrong side differs from cuBLASLt's), C
// zero.
struct Operands {
    void *a_codes = nullptr, *b_codes = nullptr, *c = nullptr, *d = nullptr;
    float *a_scales = nullptr, *b_scales = nullptr;
    static constexpr size_t kScales = 65536;

    explicit Operands(const std::vector<Shape>& shapes) {
        size_t operand_bytes = 0, out_bytes = 0;
        for (const Shape& s : shapes) {
            operand_bytes = std::max<size_t>(operand_bytes, std::max(s.m, s.n) * s.k);
            out_bytes = std::max<size_t>(out_bytes, s.m * s.n * 2);
        }
        check(cudaMalloc(&a_codes, operand_bytes), "cudaMalloc");
        check(cudaMalloc(&b_codes, operand_bytes), "cudaMalloc");
        check(cudaMalloc(&c, out_bytes), "cudaMalloc");
        check(cudaMalloc(&d, out_bytes), "cudaMalloc");
        check(cudaMalloc(&a_scales, kScales * sizeof(float)), "cudaMalloc");
        check(cudaMalloc(&b_scales, kScales * sizeof(float)), "cudaMalloc");
        std::vector<unsigned char> codes(operand_bytes);
        unsigned state = 1;
        for (unsigned char& b : codes) {
            state = state * 1664525u + 1013904223u;
            b = static_cast<unsigned char>(((state >> 24) & 0x7e) | ((state & 0x100) ? 0x80 : 0));
        }
        check(cudaMemcpy(a_codes, codes.data(), operand_bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
        // b gets the codes shifted by one byte, so that no product is a square
        check(cudaMemcpy(b_codes, codes.data() + 1, operand_bytes - 1, cudaMemcpyHostToDevice), "cudaMemcpy");
        std::vector<float> scales(2 * kScales);
        for (size_t i = 0; i < scales.size(); ++i) {
            state = state * 1664525u + 1013904223u;
            scales[i] = 0.005f + 0.015f * static_cast<float>(state >> 24) / 256.0f;
        }
        check(cudaMemcpy(a_scales, scales.data(), kScales * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        check(cudaMemcpy(b_scales, scales.data() + kScales, kScales * sizeof(float), cudaMemcpyHostToDevice),
              "cudaMemcpy");
        check(cudaMemset(c, 0, out_bytes), "cudaMemset");
    }
    ~Operands() {
        for (void* p : {a_codes, b_codes, c, d, static_cast<void*>(a_scales), static_cast<void*>(b_scales)})
            cudaFree(p);
    }
};

// cuBLAS is column-major: D (n x m) = op(A = w) B (= x), as gemm_cublaslt.cpp lays it out. A's scales are the
// weight's (per output feature), B's the activation's (per token).
struct CublasLtFp8 {
    static constexpr size_t kWorkspace = 32u << 20;
    cublasLtHandle_t handle = nullptr;
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, ld = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    void* workspace = nullptr;
    const Operands& ops;
    float alpha = 1.0f, beta = 0.0f;

    CublasLtFp8(cublasLtHandle_t h, const Shape& s, const Operands& o) : handle(h), ops(o) {
        check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
        auto attr = [&](cublasLtMatmulDescAttributes_t which, const auto& v) {
            check(cublasLtMatmulDescSetAttribute(desc, which, &v, sizeof(v)), "cublasLtMatmulDescSetAttribute");
        };
        attr(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
        attr(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
        attr(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
        attr(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
        attr(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(o.b_scales));
        attr(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(o.a_scales));
        attr(CUBLASLT_MATMUL_DESC_FAST_ACCUM, static_cast<int8_t>(1));
        check(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, s.k, s.n, s.k), "layout");
        check(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, s.k, s.m, s.k), "layout");
        check(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, s.n, s.m, s.n), "layout");
        beta = s.residual ? 1.0f : 0.0f;
        check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
        check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace,
                                                   sizeof(kWorkspace)),
              "preference");
        check(cudaMalloc(&workspace, kWorkspace), "cudaMalloc");
    }
    ~CublasLtFp8() {
        cudaFree(workspace);
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(ld);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(la);
        cublasLtMatmulDescDestroy(desc);
    }
    // The heuristic's offers (its first is what the backend runs); returns how many.
    int heuristic(cublasLtMatmulAlgo_t* algos, int wanted) const {
        std::vector<cublasLtMatmulHeuristicResult_t> offered(wanted);
        int count = 0;
        check(cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, ld, ld, pref, wanted, offered.data(), &count),
              "heuristic");
        for (int i = 0; i < count; ++i) algos[i] = offered[i].algo;
        return count;
    }
    cublasStatus_t launch(const cublasLtMatmulAlgo_t& algo, cudaStream_t stream = nullptr) const {
        return cublasLtMatmul(handle, desc, &alpha, ops.b_codes, la, ops.a_codes, lb, &beta, ops.c, ld, ops.d, ld,
                              &algo, workspace, kWorkspace, stream);
    }
};

// Microseconds a launch, over `runs` launches after one untimed; negative when a launch fails.
template <class Launch>
float time_launches(Launch&& launch, int runs) {
    static cudaEvent_t start = nullptr, stop = nullptr;
    if (!start) {
        cudaEventCreate(&start);
        cudaEventCreate(&stop);
    }
    if (!launch()) return -1.0f;
    cudaEventRecord(start);
    for (int r = 0; r < runs; ++r) launch();
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    if (cudaGetLastError() != cudaSuccess) return -1.0f;
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, start, stop);
    return ms * 1000.0f / runs;
}

}  // namespace fp8_lab
