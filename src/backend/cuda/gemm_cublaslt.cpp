// cuBLASLt GEMMs. cuBLAS is column-major, so the row-major product y [m, n] = x [m, k] w [n, k]^T is computed as
// the column-major y^T (n x m) = op(W) X with W read transposed ("TN", the only form FP8 supports on Hopper):
// cuBLAS M = n, N = m, K = k; A = w (k x n, ld k), B = x (k x m, ld k), D = y (n x m, ld n).
// With OUTER_VEC_32F scales, A's vector has one entry per output feature and B's one per token.
#include "backend/cuda/gemm_cublaslt.h"

#include "backend/cuda/cublaslt_plan.h"

namespace flux2::cuda {

struct CublasLtGemm::Plan : CublasLtPlan {
    Kind kind = Kind::bf16;
    int64_t m = 0, n = 0, k = 0;
};

CublasLtGemm::CublasLtGemm(std::shared_ptr<Stream> stream) : stream_(std::move(stream)) {
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

CublasLtGemm::Plan& CublasLtGemm::plan(Kind kind, int64_t m, int64_t n, int64_t k, const float* w_scales,
                                       const float* x_scales) {
    auto key = std::make_tuple(kind, m, n, k);
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;

    auto p = std::make_unique<Plan>();
    p->kind = kind;
    p->m = m;
    p->n = n;
    p->k = k;
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
    }
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, in_type, k, n, k));
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, in_type, k, m, k));
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_16BF, n, m, n));

    bool found = false;
    const cublasStatus_t status = p->choose_algorithm(lt(handle_), workspace_bytes_, &found);
    check(found, "cuBLASLt has no ", fp8 ? "FP8" : "BF16", " GEMM algorithm for m=", m, " n=", n, " k=", k, " (",
          cublasLtGetStatusString(status), ")");
    return *plans_.emplace(key, std::move(p)).first->second;
}

void CublasLtGemm::run(Plan& p, const void* x, const void* w, void* y, float beta) {
    const float alpha = 1.0f;
    FLUX2_CUBLAS_CHECK(cublasLtMatmul(lt(handle_), p.desc, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d, &p.algo,
                                      workspace_.get(), workspace_bytes_, stream_->get()));
}

void CublasLtGemm::bf16(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, int64_t m, int64_t n,
                        int64_t k, float beta) {
    if (m == 0 || n == 0) return;
    run(plan(Kind::bf16, m, n, k), x, w, y, beta);
}

void CublasLtGemm::fp8(const uint8_t* xq, const float* x_scales, const uint8_t* wq, const float* w_scales,
                       __nv_bfloat16* y, int64_t m, int64_t n, int64_t k, float beta) {
    if (m == 0 || n == 0) return;
    check(k % 16 == 0, "FP8 GEMM needs k divisible by 16, got ", k);
    check(reinterpret_cast<uintptr_t>(xq) % 16 == 0 && reinterpret_cast<uintptr_t>(wq) % 16 == 0,
          "FP8 GEMM operands must be 16-byte aligned");
    Plan& p = plan(Kind::fp8, m, n, k, w_scales, x_scales);
    // The scale vectors are per call; cuBLASLt reads the descriptor when the GEMM is enqueued.
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(w_scales));
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(x_scales));
    run(p, xq, wq, y, beta);
}

}  // namespace flux2::cuda
