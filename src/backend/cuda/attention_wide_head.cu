#include <cublas_v2.h>

#include <algorithm>
#include <cmath>

#include "backend/cuda/attention_wide_head.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2::cuda {

namespace {
constexpr int kSoftmaxThreads = 256;

void check_cublas(cublasStatus_t s, const char* what) {
    check(s == CUBLAS_STATUS_SUCCESS, "cuBLAS ", what, " failed (status ", static_cast<int>(s), ")");
}

// One CTA per score row: p = softmax(scale * s), fp32 math, BF16 out.
__global__ void softmax_rows_kernel(const float* s, bf16* p, int64_t L, float scale) {
    const float* row = s + int64_t(blockIdx.x) * L;
    bf16* out = p + int64_t(blockIdx.x) * L;
    __shared__ float partial[32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = blockDim.x / 32;

    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) m = fmaxf(m, row[j]);
    m = warp_max(m);
    if (lane == 0) partial[warp] = m;
    __syncthreads();
    m = lane < n_warps ? partial[lane] : -INFINITY;
    m = warp_max(m);
    __syncthreads();

    float sum = 0.0f;
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) sum += __expf((row[j] - m) * scale);
    sum = block_sum(sum);
    const float inv = 1.0f / sum;
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x) out[j] = __float2bfloat16(__expf((row[j] - m) * scale) * inv);
}
}  // namespace

WideHeadAttention::WideHeadAttention(std::shared_ptr<Stream> stream, int64_t score_budget_bytes)
    : stream_(std::move(stream)), score_budget_bytes_(score_budget_bytes) {}

WideHeadAttention::~WideHeadAttention() {
    if (handle_) cublasDestroy(static_cast<cublasHandle_t>(handle_));
}

void WideHeadAttention::run(const bf16* q, const bf16* k, const bf16* v, bf16* o, int64_t B, int64_t L, int64_t H,
                            int64_t Dh, int64_t v_row, int64_t o_row) {
    if (B == 0 || L == 0 || H == 0) return;
    if (!handle_) {
        cublasHandle_t h = nullptr;
        check_cublas(cublasCreate(&h), "create");
        handle_ = h;
    }
    auto* handle = static_cast<cublasHandle_t>(handle_);
    check_cublas(cublasSetStream(handle, stream_->get()), "set stream");
    const int64_t qk_row = H * Dh;
    // Query rows per chunk: rows x L fp32 scores per head within the budget (plus as many BF16 probabilities).
    const int64_t rows = std::max<int64_t>(1, std::min(L, score_budget_bytes_ / (4 * L * H)));
    std::shared_ptr<void> scores = allocate(static_cast<size_t>(H * rows * L) * sizeof(float), stream_);
    std::shared_ptr<void> probs = allocate(static_cast<size_t>(H * rows * L) * sizeof(bf16), stream_);
    auto* S = static_cast<float*>(scores.get());
    auto* P = static_cast<bf16*>(probs.get());
    const float one = 1.0f, zero = 0.0f, scale = 1.0f / std::sqrt(static_cast<float>(Dh));

    // Row-major X[M, K] is column-major X^T, so row-major C = A B^T is column-major C^T = B^T' A' with cuBLAS's
    // (op(B) = T, op(A) = N) and the roles of the operands swapped.
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t i0 = 0; i0 < L; i0 += rows) {
            const int64_t n = std::min(rows, L - i0);
            const bf16* qb = q + (b * L + i0) * qk_row;
            const bf16* kb = k + b * L * qk_row;
            // S[h] [n, L] = Q[h] [n, Dh] K[h]^T, one batch entry per head.
            check_cublas(cublasGemmStridedBatchedEx(
                             handle, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(L), static_cast<int>(n),
                             static_cast<int>(Dh), &one, kb, CUDA_R_16BF, static_cast<int>(qk_row), Dh, qb, CUDA_R_16BF,
                             static_cast<int>(qk_row), Dh, &zero, S, CUDA_R_32F, static_cast<int>(L), n * L,
                             static_cast<int>(H), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                         "Q K^T");
            softmax_rows_kernel<<<static_cast<unsigned>(H * n), kSoftmaxThreads, 0, stream_->get()>>>(S, P, L, scale);
            FLUX2_CUDA_CHECK_LAUNCH("softmax_rows_kernel");
            // O[h] [n, Dh] = P[h] [n, L] V[h] [L, Dh], written into the token rows of o.
            check_cublas(cublasGemmStridedBatchedEx(
                             handle, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(Dh), static_cast<int>(n),
                             static_cast<int>(L), &one, v + b * L * v_row, CUDA_R_16BF, static_cast<int>(v_row), Dh, P,
                             CUDA_R_16BF, static_cast<int>(L), n * L, &zero, o + (b * L + i0) * o_row, CUDA_R_16BF,
                             static_cast<int>(o_row), Dh, static_cast<int>(H), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                         "P V");
        }
    }
}

}  // namespace flux2::cuda
