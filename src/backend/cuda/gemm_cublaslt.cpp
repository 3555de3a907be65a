// cuBLASLt GEMMs. cuBLAS is column-major, so the row-major product y [m, n] = x [m, k] w [n, k]^T is computed as
// the column-major y^T (n x m) = op(W) X with W read transposed ("TN", the only form FP8 supports on Hopper):
// cuBLAS M = n, N = m, K = k; A = w (k x n, ld k), B = x (k x m, ld k), D = y (n x m, ld n).
// With OUTER_VEC_32F scales, A's vector has one entry per output feature and B's one per token.
#include "backend/cuda/gemm_cublaslt.h"

#include <cstdlib>
#include <cstring>

#include "backend/cuda/cublaslt_plan.h"
#include "core/log.h"

namespace flux2::cuda {

struct CublasLtGemm::Plan : CublasLtPlan {
    Kind kind = Kind::bf16;
    int64_t m = 0, n = 0, k = 0, ldy = 0;
    bool tuned = false;  // the candidates were timed (or there was nothing to choose)
};

namespace {
// The heuristic ranks algorithms by a model of the GPU, and its first pick is often not the fastest for the
// skinny shapes of a LoRA branch (k or n = the rank) or for some of the model's own GEMMs; each shape's
// candidates are therefore timed once, on the first call outside a CUDA-graph recording, and the fastest kept.
// FLUX2_GEMM_AUTOTUNE=0 keeps the heuristic's first pick.
constexpr int kCandidates = 8;
// A LoRA down-projection (n = the rank) has too few output tiles for the SMs, and the heuristic's model ranks such
// shapes poorly: they time more of its list (once per shape, at the first eager step).
constexpr int kSkinnyCandidates = 32;
constexpr int64_t kSkinnyN = 64;
constexpr int kTimedRuns = 3;
// A beta = 1 GEMM is timed into a scratch output (its C must survive); larger outputs keep the first pick.
constexpr size_t kMaxScratchBytes = size_t{1} << 30;

bool autotune_enabled() {
    static const bool on = [] {
        const char* v = std::getenv("FLUX2_GEMM_AUTOTUNE");
        return !(v && std::strcmp(v, "0") == 0);
    }();
    return on;
}
}  // namespace

CublasLtGemm::CublasLtGemm(std::shared_ptr<Stream> stream, bool fast_fp8_accumulation)
    : stream_(std::move(stream)), fast_fp8_accumulation_(fast_fp8_accumulation) {
    cublasLtHandle_t h = nullptr;
    FLUX2_CUBLAS_CHECK(cublasLtCreate(&h));
    handle_ = h;
    workspace_bytes_ = kCublasLtWorkspaceBytes;
    workspace_ = allocate(workspace_bytes_, stream_);
}

CublasLtGemm::~CublasLtGemm() {
    plans_.clear();
    if (handle_) cublasLtDestroy(lt(handle_));
}

CublasLtGemm::Plan& CublasLtGemm::plan(Kind kind, int64_t m, int64_t n, int64_t k, int64_t ldy, const float* w_scales,
                                       const float* x_scales) {
    auto key = std::make_tuple(kind, m, n, k, ldy);
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;

    auto p = std::make_unique<Plan>();
    p->kind = kind;
    p->m = m;
    p->n = n;
    p->k = k;
    p->ldy = ldy;
    const bool fp8 = kind == Kind::fp8;
    const cudaDataType_t in_type = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF;
    FLUX2_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
    if (fp8) {
        set_attr(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
        set_attr(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
        set_attr(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(w_scales));
        set_attr(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(x_scales));
        // Hopper's FP8 MMA adds products into an accumulator narrower than fp32; without FAST_ACCUM the kernel
        // moves it into fp32 registers every few K steps, which costs issue slots and power (~10% of the GEMM).
        set_attr(p->desc, CUBLASLT_MATMUL_DESC_FAST_ACCUM, static_cast<int8_t>(fast_fp8_accumulation_ ? 1 : 0));
    }
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, in_type, k, n, k));
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, in_type, k, m, k));
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_16BF, n, m, ldy));

    bool found = false;
    const cublasStatus_t status =
        p->choose_algorithm(lt(handle_), workspace_bytes_, &found,
                            autotune_enabled() ? (n <= kSkinnyN ? kSkinnyCandidates : kCandidates) : 1);
    p->tuned = p->candidates.size() < 2;
    check(found, "cuBLASLt has no ", fp8 ? "FP8" : "BF16", " GEMM algorithm for m=", m, " n=", n, " k=", k, " (",
          cublasLtGetStatusString(status), ")");
    return *plans_.emplace(key, std::move(p)).first->second;
}

void CublasLtGemm::run(Plan& p, const void* x, const void* w, void* y, float beta) {
    if (!p.tuned && !stream_->recording()) tune(p, x, w, y, beta);
    const float alpha = 1.0f;
    FLUX2_CUBLAS_CHECK(cublasLtMatmul(lt(handle_), p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d, &p.algo,
                                      workspace_.get(), workspace_bytes_, stream_->get()));
}

void CublasLtGemm::tune(Plan& p, const void* x, const void* w, void* y, float beta) {
    p.tuned = true;
    const size_t out_bytes = static_cast<size_t>(p.m * p.ldy) * sizeof(__nv_bfloat16);
    std::shared_ptr<void> scratch;
    void* d = y;  // beta = 0: y is overwritten by the real call afterwards anyway
    if (beta != 0.0f) {
        if (out_bytes > kMaxScratchBytes) return;
        scratch = allocate(out_bytes, stream_);
        d = scratch.get();
    }
    cudaEvent_t start = nullptr, stop = nullptr;
    FLUX2_CUDA_CHECK(cudaEventCreate(&start));
    FLUX2_CUDA_CHECK(cudaEventCreate(&stop));
    const float alpha = 1.0f;
    float best_ms = 0.0f, first_ms = 0.0f;
    size_t best = 0;
    for (size_t i = 0; i < p.candidates.size(); ++i) {
        auto launch = [&] {
            return cublasLtMatmul(lt(handle_), p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.d, d, p.d, &p.candidates[i],
                                  workspace_.get(), workspace_bytes_, stream_->get());
        };
        if (launch() != CUBLAS_STATUS_SUCCESS) continue;  // a candidate the library cannot run here: skip it
        FLUX2_CUDA_CHECK(cudaEventRecord(start, stream_->get()));
        bool ok = true;
        for (int r = 0; r < kTimedRuns && ok; ++r) ok = launch() == CUBLAS_STATUS_SUCCESS;
        FLUX2_CUDA_CHECK(cudaEventRecord(stop, stream_->get()));
        FLUX2_CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0.0f;
        FLUX2_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        if (!ok) continue;
        if (i == 0) first_ms = ms;
        if (best_ms == 0.0f || ms < best_ms) {
            best_ms = ms;
            best = i;
        }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    if (best_ms > 0.0f) p.algo = p.candidates[best];
    log_debug("cuBLASLt ", p.kind == Kind::fp8 ? "fp8" : "bf16", " ", p.m, "x", p.n, "x", p.k, ": candidate ", best,
              " of ", p.candidates.size(), " (", best_ms / kTimedRuns * 1e3f, " us; the heuristic's first ",
              first_ms / kTimedRuns * 1e3f, " us)");
}

void CublasLtGemm::bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int64_t m, int64_t n,
                        int64_t k, float beta) {
    if (m == 0 || n == 0) return;
    run(plan(Kind::bf16, m, n, k, n), x, w, y, beta);
}

void CublasLtGemm::fp8(const uint8_t* xq, const float* x_scales, const uint8_t* wq, const float* w_scales,
                       __nv_bfloat16* y, int64_t m, int64_t n, int64_t k, float beta, int64_t ldy) {
    if (m == 0 || n == 0) return;
    if (ldy == 0) ldy = n;
    check(k % 16 == 0, "FP8 GEMM needs k divisible by 16, got ", k);
    // A product into columns of a wider output (a chunk of a layer's channels) starts on a 16-byte boundary and
    // steps by whole 16-byte units, as the output of a whole layer does.
    check(ldy == n || (ldy > n && ldy % 8 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0),
          "FP8 GEMM output: a row stride of ", ldy, " for ", n, " columns (a multiple of 8, 16-byte aligned)");
    check(reinterpret_cast<uintptr_t>(xq) % 16 == 0 && reinterpret_cast<uintptr_t>(wq) % 16 == 0,
          "FP8 GEMM operands must be 16-byte aligned");
    Plan& p = plan(Kind::fp8, m, n, k, ldy, w_scales, x_scales);
    // The scale vectors are per call; cuBLASLt reads the descriptor when the GEMM is enqueued.
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(w_scales));
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(x_scales));
    run(p, xq, wq, y, beta);
}

}  // namespace flux2::cuda
