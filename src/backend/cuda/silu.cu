// silu(x) = x * sigmoid(x), elementwise on BF16.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;

template <int W>
__global__ void silu_kernel(const bf16* x, bf16* y, int64_t n_vec) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n_vec; i += int64_t(gridDim.x) * blockDim.x) {
        float v[W];
        load_bf16<W>(x + i * W, v);
#pragma unroll
        for (int j = 0; j < W; ++j) v[j] = silu(v[j]);
        store_bf16<W>(y + i * W, v);
    }
}
}  // namespace

void launch_silu(const bf16* x, bf16* y, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    if (n % kVec == 0) {
        silu_kernel<kVec><<<grid_for(n / kVec, kThreads), kThreads, 0, stream>>>(x, y, n / kVec);
    } else {
        silu_kernel<1><<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n);
    }
    FLUX2_CUDA_CHECK_LAUNCH("silu_kernel");
}

}  // namespace cuda

Tensor CudaBackend::silu(const Tensor& x) {
    FLUX2_PROFILE_OP("silu");
    expect_device_bf16(x, "silu", "x");
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_silu(static_cast<const cuda::bf16*>(x.raw()), static_cast<cuda::bf16*>(y.raw()), x.numel(), stream());
    return y;
}

}  // namespace flux2
