// RMSNorm over the last dim with a gain: y = x / sqrt(mean(x^2) + eps) * weight. One CTA per row.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
template <int W>
__global__ void rms_norm_kernel(const bf16* x, const bf16* weight, bf16* y, int64_t D, float eps) {
    const bf16* xr = x + int64_t(blockIdx.x) * D;
    const int64_t step = int64_t(blockDim.x) * W;
    float sq = 0.0f;
    for (int64_t i = threadIdx.x * W; i < D; i += step) {
        float v[W];
        load_bf16<W>(xr + i, v);
#pragma unroll
        for (int j = 0; j < W; ++j) sq += v[j] * v[j];
    }
    const float inv = rsqrtf(block_sum(sq) / static_cast<float>(D) + eps);
    for (int64_t i = threadIdx.x * W; i < D; i += step) {
        float v[W], g[W];
        load_bf16<W>(xr + i, v);
        load_bf16<W>(weight + i, g);
#pragma unroll
        for (int j = 0; j < W; ++j) v[j] = v[j] * inv * g[j];
        store_bf16<W>(y + int64_t(blockIdx.x) * D + i, v);
    }
}
}  // namespace

void launch_rms_norm(const bf16* x, const bf16* weight, bf16* y, int64_t rows, int64_t D, float eps,
                     cudaStream_t stream) {
    if (rows == 0 || D == 0) return;
    if (D % kVec == 0) {
        rms_norm_kernel<kVec><<<rows, row_threads(D / kVec), 0, stream>>>(x, weight, y, D, eps);
    } else {
        rms_norm_kernel<1><<<rows, row_threads(D), 0, stream>>>(x, weight, y, D, eps);
    }
    FLUX2_CUDA_CHECK_LAUNCH("rms_norm_kernel");
}

}  // namespace cuda

Tensor CudaBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
    FLUX2_PROFILE_OP("rms_norm");
    expect_device_bf16(x, "rms_norm", "x");
    expect_device_bf16(weight, "rms_norm", "weight");
    const int64_t D = x.dim(-1);
    check(weight.numel() == D, "rms_norm: weight has ", weight.numel(), " elements, expected ", D);
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_rms_norm(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(weight.raw()),
                          static_cast<cuda::bf16*>(y.raw()), D ? x.numel() / D : 0, D, eps, stream());
    return y;
}

}  // namespace flux2
