// add and mul: elementwise on two BF16 tensors of one shape (one kernel, the operation as a template).
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;

enum class BinaryOp { add, mul };

template <BinaryOp Op, int W>
__global__ void binary_kernel(const bf16* a, const bf16* b, bf16* y, int64_t n_vec) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_vec; i += int64_t(gridDim.x) * blockDim.x) {
        float va[W], vb[W];
        load_bf16<W>(a + i * W, va);
        load_bf16<W>(b + i * W, vb);
#pragma unroll
        for (int j = 0; j < W; ++j) va[j] = Op == BinaryOp::add ? va[j] + vb[j] : va[j] * vb[j];
        store_bf16<W>(y + i * W, va);
    }
}

template <BinaryOp Op>
void launch_binary(const bf16* a, const bf16* b, bf16* y, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    if (n % kVec == 0) {
        binary_kernel<Op, kVec><<<grid_for(n / kVec, kThreads), kThreads, 0, stream>>>(a, b, y, n / kVec);
    } else {
        binary_kernel<Op, 1><<<grid_for(n, kThreads), kThreads, 0, stream>>>(a, b, y, n);
    }
    FLUX2_CUDA_CHECK_LAUNCH("binary_kernel");
}

Tensor run(CudaBackend& be, const Tensor& a, const Tensor& b, const char* op, bool is_add) {
    expect_device_bf16(a, op, "a");
    expect_device_bf16(b, op, "b");
    check(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " differ");
    Tensor y = be.empty(a.shape(), DType::BF16);
    const auto* pa = static_cast<const bf16*>(a.raw());
    const auto* pb = static_cast<const bf16*>(b.raw());
    auto* py = static_cast<bf16*>(y.raw());
    if (is_add) {
        launch_binary<BinaryOp::add>(pa, pb, py, a.numel(), be.stream());
    } else {
        launch_binary<BinaryOp::mul>(pa, pb, py, a.numel(), be.stream());
    }
    return y;
}
}  // namespace

}  // namespace cuda

Tensor CudaBackend::add(const Tensor& a, const Tensor& b) {
    FLUX2_PROFILE_OP("add");
    return cuda::run(*this, a, b, "add", true);
}
Tensor CudaBackend::mul(const Tensor& a, const Tensor& b) {
    FLUX2_PROFILE_OP("mul");
    return cuda::run(*this, a, b, "mul", false);
}

}  // namespace flux2
