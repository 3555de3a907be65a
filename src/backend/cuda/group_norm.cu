// GroupNorm with affine and optional SiLU over NCHW: a group's channels are contiguous, so group g of sample b is
// the flat range [(b*G + g) * n, (b*G + g + 1) * n) with n = C/G * S. Statistics come from many CTAs per group
// (a 1024^2 VAE group holds millions of elements): fp32 partial sums per CTA, combined in fp64 atomics.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;
constexpr int64_t kChunk = 16384;  // elements of a group summed by one CTA

// grid (chunks, B*G): stats[2*bg] += sum, stats[2*bg + 1] += sum of squares.
__global__ void group_stats_kernel(const bf16* x, double* stats, int64_t n) {
    const int64_t bg = blockIdx.y, begin = int64_t(blockIdx.x) * kChunk;
    const int64_t end = begin + kChunk < n ? begin + kChunk : n;
    const bf16* xg = x + bg * n;
    float s = 0.0f, sq = 0.0f;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
        const float v = __bfloat162float(xg[i]);
        s += v;
        sq += v * v;
    }
    s = block_sum(s);
    sq = block_sum(sq);
    if (threadIdx.x == 0) {
        atomicAdd(stats + 2 * bg, static_cast<double>(s));
        atomicAdd(stats + 2 * bg + 1, static_cast<double>(sq));
    }
}

__global__ void group_apply_kernel(const bf16* x, const bf16* weight, const bf16* bias, bf16* y, const double* stats,
                                   int64_t total, int64_t n, int64_t S, int64_t C, int64_t G, float eps, bool silu_on) {
    const int64_t cg = C / G;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t bg = i / n, c = (bg % G) * cg + (i % n) / S;
        const double mean = stats[2 * bg] / n;
        const double var = fmax(stats[2 * bg + 1] / n - mean * mean, 0.0);
        const float rstd = static_cast<float>(rsqrt(var + eps));
        float v = (__bfloat162float(x[i]) - static_cast<float>(mean)) * rstd * __bfloat162float(weight[c]) +
                  __bfloat162float(bias[c]);
        if (silu_on) v = silu(v);
        y[i] = __float2bfloat16_rn(v);
    }
}
}  // namespace

void launch_group_norm(const bf16* x, const bf16* weight, const bf16* bias, bf16* y, double* stats, int64_t B,
                       int64_t C, int64_t S, int64_t G, float eps, bool silu, cudaStream_t stream) {
    const int64_t n = C / G * S, total = B * C * S;
    if (total == 0) return;
    FLUX2_CUDA_CHECK(cudaMemsetAsync(stats, 0, 2 * B * G * sizeof(double), stream));
    const dim3 grid(static_cast<unsigned>((n + kChunk - 1) / kChunk), static_cast<unsigned>(B * G));
    group_stats_kernel<<<grid, kThreads, 0, stream>>>(x, stats, n);
    FLUX2_CUDA_CHECK_LAUNCH("group_stats_kernel");
    group_apply_kernel<<<grid_for(total, kThreads), kThreads, 0, stream>>>(x, weight, bias, y, stats, total, n, S, C, G,
                                                                           eps, silu);
    FLUX2_CUDA_CHECK_LAUNCH("group_apply_kernel");
}

}  // namespace cuda

Tensor CudaBackend::group_norm(const Tensor& x, int num_groups, const Tensor& weight, const Tensor& bias, float eps,
                               bool silu) {
    FLUX2_PROFILE_OP("group_norm");
    const char* op = "group_norm";
    expect_device_bf16(x, op, "x");
    expect_device_bf16(weight, op, "weight");
    expect_device_bf16(bias, op, "bias");
    check(x.ndim() >= 2, "group_norm: expected [B, C, ...], got ", shape_str(x.shape()));
    const int64_t B = x.dim(0), C = x.dim(1), S = B * C ? x.numel() / (B * C) : 0;
    check(num_groups > 0 && C % num_groups == 0, "group_norm: ", C, " channels do not split into ", num_groups,
          " groups");
    check(weight.numel() == C && bias.numel() == C, "group_norm: weight / bias have ", weight.numel(), " / ",
          bias.numel(), " elements, expected ", C);
    Tensor y = empty(x.shape(), DType::BF16);
    Tensor stats = empty({2 * B * num_groups}, DType::F64);
    cuda::launch_group_norm(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(weight.raw()),
                            static_cast<const cuda::bf16*>(bias.raw()), static_cast<cuda::bf16*>(y.raw()),
                            static_cast<double*>(stats.raw()), B, C, S, num_groups, eps, silu, stream());
    return y;
}

}  // namespace flux2
