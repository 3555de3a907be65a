#pragma once
// What every cuBLASLt GEMM of the backend shares: status checks, descriptor attributes, the per-shape plan
// (descriptor + layouts + chosen algorithm) and the heuristic query. Only the .cpp files that call cuBLASLt
// include this.
#include <cublasLt.h>

#include <cstdint>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace flux2::cuda {

// cuBLASLt's workspace recommendation for Hopper.
constexpr size_t kCublasLtWorkspaceBytes = 32u << 20;

inline void check_cublas(cublasStatus_t status, const char* expr, const char* file, int line) {
    if (status != CUBLAS_STATUS_SUCCESS) fail_call("cuBLASLt", expr, file, line, cublasLtGetStatusString(status));
}
#define FLUX2_CUBLAS_CHECK(expr) ::flux2::cuda::check_cublas((expr), #expr, __FILE__, __LINE__)

inline cublasLtHandle_t lt(void* handle) { return static_cast<cublasLtHandle_t>(handle); }

template <class T>
void set_attr(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const T& value) {
    FLUX2_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value)));
}

// One GEMM shape: the descriptor, the three layouts and the heuristic's algorithm, destroyed together.
struct CublasLtPlan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
    cublasLtMatmulAlgo_t algo{};

    CublasLtPlan() = default;
    CublasLtPlan(const CublasLtPlan&) = delete;
    CublasLtPlan& operator=(const CublasLtPlan&) = delete;
    ~CublasLtPlan() {
        if (d) cublasLtMatrixLayoutDestroy(d);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (desc) cublasLtMatmulDescDestroy(desc);
    }

    // The heuristic's candidates that fit the workspace (D doubles as C), best first; algo = the first. Returns
    // the query's status; *found is false if there is none.
    std::vector<cublasLtMatmulAlgo_t> candidates;
    cublasStatus_t choose_algorithm(cublasLtHandle_t handle, uint64_t workspace_bytes, bool* found,
                                    int max_candidates = 1) {
        cublasLtMatmulPreference_t pref = nullptr;
        FLUX2_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(max_candidates));
        int count = 0;
        cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                     &workspace_bytes, sizeof(workspace_bytes));
        if (status == CUBLAS_STATUS_SUCCESS)
            status =
                cublasLtMatmulAlgoGetHeuristic(handle, desc, a, b, d, d, pref, max_candidates, results.data(), &count);
        cublasLtMatmulPreferenceDestroy(pref);
        *found = status == CUBLAS_STATUS_SUCCESS && count > 0;
        candidates.clear();
        for (int i = 0; *found && i < count; ++i) {
            if (results[i].state == CUBLAS_STATUS_SUCCESS) candidates.push_back(results[i].algo);
        }
        *found = !candidates.empty();
        if (*found) algo = candidates.front();
        return status;
    }
};

}  // namespace flux2::cuda
