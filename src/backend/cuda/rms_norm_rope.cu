// QK-RMSNorm + RoPE for one head vector per warp: y = rope(x / sqrt(mean(x^2) + eps) * weight), where pair
// (2j, 2j+1) rotates as y0 = n0 cos[2j] - n1 sin[2j], y1 = n1 cos[2j+1] + n0 sin[2j+1] (diffusers' interleaved
// apply_rotary_emb; the tables repeat each angle twice).
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kWarpsPerBlock = 8;

__global__ void rms_norm_rope_kernel(const bf16* x, const bf16* weight, const bf16* cos, const bf16* sin, bf16* y,
                                     int64_t rows, int64_t L, int64_t H, int64_t Dh, float eps) {
    const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    if (r >= rows) return;  // whole warps leave together: the shuffles below stay full-warp
    const int lane = threadIdx.x % 32;
    const int64_t l = (r / H) % L, pairs = Dh / 2;
    const auto* xr = reinterpret_cast<const __nv_bfloat162*>(x + r * Dh);

    float sq = 0.0f;
    for (int64_t p = lane; p < pairs; p += 32) {
        float2 v = __bfloat1622float2(xr[p]);
        sq += v.x * v.x + v.y * v.y;
    }
    const float inv = rsqrtf(warp_sum(sq) / static_cast<float>(Dh) + eps);

    const auto* w2 = reinterpret_cast<const __nv_bfloat162*>(weight);
    const auto* c2 = reinterpret_cast<const __nv_bfloat162*>(cos + l * Dh);
    const auto* s2 = reinterpret_cast<const __nv_bfloat162*>(sin + l * Dh);
    auto* yr = reinterpret_cast<__nv_bfloat162*>(y + r * Dh);
    for (int64_t p = lane; p < pairs; p += 32) {
        const float2 v = __bfloat1622float2(xr[p]), g = __bfloat1622float2(w2[p]);
        const float2 c = __bfloat1622float2(c2[p]), s = __bfloat1622float2(s2[p]);
        const float n0 = v.x * inv * g.x, n1 = v.y * inv * g.y;
        yr[p] = __floats2bfloat162_rn(n0 * c.x - n1 * s.x, n1 * c.y + n0 * s.y);
    }
}
}  // namespace

void launch_rms_norm_rope(const bf16* x, const bf16* weight, const bf16* cos, const bf16* sin, bf16* y, int64_t B,
                          int64_t L, int64_t H, int64_t Dh, float eps, cudaStream_t stream) {
    const int64_t rows = B * L * H;
    if (rows == 0 || Dh == 0) return;
    const unsigned blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
    rms_norm_rope_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(x, weight, cos, sin, y, rows, L, H, Dh, eps);
    FLUX2_CUDA_CHECK_LAUNCH("rms_norm_rope_kernel");
}

}  // namespace cuda

Tensor CudaBackend::rms_norm_rope(const Tensor& x, const Tensor& norm_weight, const Tensor& cos, const Tensor& sin,
                                  float eps) {
    const char* op = "rms_norm_rope";
    expect_device_bf16(x, op, "x");
    expect_device_bf16(norm_weight, op, "norm_weight");
    expect_device_bf16(cos, op, "cos");
    expect_device_bf16(sin, op, "sin");
    check(x.ndim() == 4, op, ": expected x [B, L, H, Dh], got ", shape_str(x.shape()));
    const int64_t L = x.dim(1), Dh = x.dim(3);
    check(Dh % 2 == 0, op, ": head dim ", Dh, " is odd");
    check(norm_weight.numel() == Dh, op, ": norm_weight has ", norm_weight.numel(), " elements, expected ", Dh);
    check(cos.shape() == Shape{L, Dh} && sin.shape() == Shape{L, Dh}, op, ": cos/sin must be [", L, ", ", Dh, "], got ",
          shape_str(cos.shape()), " / ", shape_str(sin.shape()));
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_rms_norm_rope(static_cast<const cuda::bf16*>(x.raw()),
                               static_cast<const cuda::bf16*>(norm_weight.raw()),
                               static_cast<const cuda::bf16*>(cos.raw()), static_cast<const cuda::bf16*>(sin.raw()),
                               static_cast<cuda::bf16*>(y.raw()), x.dim(0), L, x.dim(2), Dh, eps, stream());
    return y;
}

}  // namespace flux2
