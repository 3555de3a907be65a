// Rotate-half RoPE of the text encoders (Qwen3, Mistral): y = x * cos + concat(-x2, x1) * sin with x1, x2 the two
// halves of each head vector. One thread per element.
#include "backend/op_shapes.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;

__global__ void rope_half_kernel(const bf16* x, const bf16* cos, const bf16* sin, bf16* y, int64_t n, int64_t L,
                                 int64_t H, int64_t Dh, bool per_sample) {
    const int64_t half = Dh / 2;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t d = i % Dh, bl = i / (Dh * H);  // b * L + l
        const int64_t t = (per_sample ? bl : bl % L) * Dh + d;
        const float v = __bfloat162float(x[i]);
        const float rotated = d < half ? -__bfloat162float(x[i + half]) : __bfloat162float(x[i - half]);
        y[i] = __float2bfloat16_rn(v * __bfloat162float(cos[t]) + rotated * __bfloat162float(sin[t]));
    }
}
}  // namespace

void launch_rope_half(const bf16* x, const bf16* cos, const bf16* sin, bf16* y, int64_t B, int64_t L, int64_t H,
                      int64_t Dh, bool per_sample, cudaStream_t stream) {
    const int64_t n = B * L * H * Dh;
    if (n == 0) return;
    rope_half_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, cos, sin, y, n, L, H, Dh, per_sample);
    FLUX2_CUDA_CHECK_LAUNCH("rope_half_kernel");
}

}  // namespace cuda

Tensor CudaBackend::rope_half(const Tensor& x, const Tensor& cos, const Tensor& sin) {
    FLUX2_PROFILE_OP("rope_half");
    const char* op = "rope_half";
    expect_device_bf16(x, op, "x");
    expect_device_bf16(cos, op, "cos");
    expect_device_bf16(sin, op, "sin");
    const RopeHalfShape s = rope_half_shape(x, cos, sin);
    const int64_t B = s.B, L = s.L, H = s.H, Dh = s.Dh;
    const bool per_sample = s.per_sample;
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_rope_half(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(cos.raw()),
                           static_cast<const cuda::bf16*>(sin.raw()), static_cast<cuda::bf16*>(y.raw()), B, L, H, Dh,
                           per_sample, stream());
    return y;
}

}  // namespace flux2
