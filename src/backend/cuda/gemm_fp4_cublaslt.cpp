// Block-scaled FP4 GEMM. As in gemm_cublaslt.cpp the row-major product is the column-major y^T (n x m) =
// op(W) X in the "TN" form, the only one cuBLASLt offers for FP4: cuBLAS M = n, N = m, K = k; A = w (k x n,
// ld k, K-major), B = x (k x m, ld k), D = y (n x m, ld n); sizes and leading dimensions count FP4 elements.
// The A scales are the weight's [n, k/16] matrix and the B scales the activations' [m, k/16], both in the 128x4
// swizzle (cuBLAS "1D block scaling factors layout").
#include "backend/cuda/gemm_fp4_cublaslt.h"

#include "backend/cuda/cublaslt_plan.h"

// CUDA_R_4F_E2M1 and the VEC16_UE4M3 scale mode arrived with cuBLAS 12.8.
#if defined(CUBLAS_VERSION) && CUBLAS_VERSION >= 120800
#define FLUX2_HAVE_CUBLASLT_FP4 1
#else
#define FLUX2_HAVE_CUBLASLT_FP4 0
#endif

namespace flux2::cuda {

namespace {
bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
}  // namespace

struct CublasLtFp4Gemm::Plan : CublasLtPlan {};

CublasLtFp4Gemm::CublasLtFp4Gemm(std::shared_ptr<Stream> stream) : stream_(std::move(stream)) {
    check(FLUX2_HAVE_CUBLASLT_FP4, "the fp4 GEMM needs cuBLAS 12.8 or newer; this build has cuBLAS ",
          CUBLAS_VER_MAJOR, ".", CUBLAS_VER_MINOR);
    cublasLtHandle_t h = nullptr;
    FLUX2_CUBLAS_CHECK(cublasLtCreate(&h));
    handle_ = h;
    workspace_bytes_ = kCublasLtWorkspaceBytes;
    workspace_ = allocate(workspace_bytes_, stream_);
}

CublasLtFp4Gemm::~CublasLtFp4Gemm() {
    plans_.clear();
    if (handle_) cublasLtDestroy(lt(handle_));
}

CublasLtFp4Gemm::Plan& CublasLtFp4Gemm::plan(int64_t m, int64_t n, int64_t k, const uint8_t* w_scales,
                                             const uint8_t* x_scales) {
    auto key = std::make_tuple(m, n, k);
    auto it = plans_.find(key);
    if (it != plans_.end()) return *it->second;
    auto p = std::make_unique<Plan>();
#if FLUX2_HAVE_CUBLASLT_FP4
    FLUX2_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, CUBLASLT_POINTER_MODE_DEVICE);
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3);
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3);
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(w_scales));
    set_attr(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(x_scales));
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->a, CUDA_R_4F_E2M1, k, n, k));
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->b, CUDA_R_4F_E2M1, k, m, k));
    FLUX2_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->d, CUDA_R_16BF, n, m, n));

    bool found = false;
    const cublasStatus_t status = p->choose_algorithm(lt(handle_), workspace_bytes_, &found);
    check(found, "cuBLASLt has no block-scaled FP4 GEMM algorithm for m=", m, " n=", n, " k=", k, " on this GPU (",
          cublasLtGetStatusString(status), "); the fp4 precision needs compute capability 10.x or 12.x");
#else
    (void)w_scales;
    (void)x_scales;
    fail("the fp4 GEMM needs cuBLAS 12.8 or newer (m=", m, " n=", n, " k=", k, ")");
#endif
    return *plans_.emplace(key, std::move(p)).first->second;
}

void CublasLtFp4Gemm::run(const uint8_t* xq, const uint8_t* x_scales, const uint8_t* wq, const uint8_t* w_scales,
                          const float* alpha_beta, __nv_bfloat16* y, int64_t m, int64_t n, int64_t k) {
    if (m == 0 || n == 0) return;
    check(k % 32 == 0, "FP4 GEMM needs k divisible by 32 (16-byte rows), got ", k);
    check(aligned16(xq) && aligned16(wq) && aligned16(x_scales) && aligned16(w_scales) && aligned16(y),
          "FP4 GEMM operands and scale buffers must be 16-byte aligned");
    Plan& p = plan(m, n, k, w_scales, x_scales);
    // Scale pointers change per call; cuBLASLt reads the descriptor when the GEMM is enqueued.
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(w_scales));
    set_attr(p.desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(x_scales));
    FLUX2_CUBLAS_CHECK(cublasLtMatmul(lt(handle_), p.desc, alpha_beta, wq, p.a, xq, p.b, alpha_beta + 1, y, p.d, y,
                                      p.d, &p.algo, workspace_.get(), workspace_bytes_, stream_->get()));
}

}  // namespace flux2::cuda
