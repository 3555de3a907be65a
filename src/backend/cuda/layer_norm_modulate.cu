// LayerNorm over the last dim (no affine) followed by adaLN modulation: y = norm(x) * (1 + scale[b]) + shift[b].
// One CTA per row; mean and variance in fp32 by two passes over the row (it stays in L1/L2 between passes).
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
template <int W>
__global__ void layer_norm_modulate_kernel(const bf16* x, const bf16* shift, const bf16* scale, bf16* y, int64_t L,
                                           int64_t D, float eps) {
    const int64_t r = blockIdx.x, b = r / L;
    const bf16* xr = x + r * D;
    const int64_t step = int64_t(blockDim.x) * W;

    float sum = 0.0f;
    for (int64_t i = threadIdx.x * W; i < D; i += step) {
        float v[W];
        load_bf16<W>(xr + i, v);
#pragma unroll
        for (int j = 0; j < W; ++j) sum += v[j];
    }
    const float mean = block_sum(sum) / static_cast<float>(D);

    float sq = 0.0f;
    for (int64_t i = threadIdx.x * W; i < D; i += step) {
        float v[W];
        load_bf16<W>(xr + i, v);
#pragma unroll
        for (int j = 0; j < W; ++j) sq += (v[j] - mean) * (v[j] - mean);
    }
    const float rstd = rsqrtf(block_sum(sq) / static_cast<float>(D) + eps);

    for (int64_t i = threadIdx.x * W; i < D; i += step) {
        float v[W], sh[W], sc[W];
        load_bf16<W>(xr + i, v);
        load_bf16<W>(shift + b * D + i, sh);
        load_bf16<W>(scale + b * D + i, sc);
#pragma unroll
        for (int j = 0; j < W; ++j) v[j] = (v[j] - mean) * rstd * (1.0f + sc[j]) + sh[j];
        store_bf16<W>(y + r * D + i, v);
    }
}
}  // namespace

void launch_layer_norm_modulate(const bf16* x, const bf16* shift, const bf16* scale, bf16* y, int64_t rows, int64_t L,
                                int64_t D, float eps, cudaStream_t stream) {
    if (rows == 0 || D == 0) return;
    if (D % kVec == 0) {
        layer_norm_modulate_kernel<kVec><<<rows, row_threads(D / kVec), 0, stream>>>(x, shift, scale, y, L, D, eps);
    } else {
        layer_norm_modulate_kernel<1><<<rows, row_threads(D), 0, stream>>>(x, shift, scale, y, L, D, eps);
    }
    FLUX2_CUDA_CHECK_LAUNCH("layer_norm_modulate_kernel");
}

}  // namespace cuda

Tensor CudaBackend::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) {
    const char* op = "layer_norm_modulate";
    expect_device_bf16(x, op, "x");
    expect_device_bf16(shift, op, "shift");
    expect_device_bf16(scale, op, "scale");
    check(x.ndim() == 3, op, ": expected x [B, L, D], got ", shape_str(x.shape()));
    const Shape per_sample{x.dim(0), x.dim(2)};
    check(shift.shape() == per_sample && scale.shape() == per_sample, op,
          ": shift and scale must be [B, D] = ", shape_str(per_sample), ", got ", shape_str(shift.shape()), " and ",
          shape_str(scale.shape()));
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_layer_norm_modulate(static_cast<const cuda::bf16*>(x.raw()),
                                     static_cast<const cuda::bf16*>(shift.raw()),
                                     static_cast<const cuda::bf16*>(scale.raw()), static_cast<cuda::bf16*>(y.raw()),
                                     x.dim(0) * x.dim(1), x.dim(1), x.dim(2), eps, stream());
    return y;
}

}  // namespace flux2
