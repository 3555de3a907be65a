// Layout ops of the VAE on BF16: transpose of the last two dims (also conv2d's NHWC -> NCHW step, with a bias),
// zero padding, nearest 2x upsampling, a bias add over the last dim and a per-channel one over NCHW planes.
#include <algorithm>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/op_shapes.h"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kTile = 32;

// 32x32 tiles through shared memory (one padding column avoids bank conflicts); blockIdx.z walks `outer`.
__global__ void transpose_kernel(const bf16* in, const bf16* bias, bf16* out, int64_t M, int64_t N) {
    __shared__ float tile[kTile][kTile + 1];
    const int64_t o = blockIdx.z, i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
    const bf16* src = in + o * M * N;
    bf16* dst = out + o * M * N;
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        const int64_t i = i0 + r, j = j0 + threadIdx.x;
        if (i < M && j < N) tile[r][threadIdx.x] = __bfloat162float(src[i * N + j]);
    }
    __syncthreads();
    for (int r = threadIdx.y; r < kTile; r += blockDim.y) {
        const int64_t j = j0 + r, i = i0 + threadIdx.x;  // output row j, column i
        if (i < M && j < N) {
            const float b = bias ? __bfloat162float(bias[j]) : 0.0f;
            dst[j * M + i] = __float2bfloat16_rn(tile[threadIdx.x][r] + b);
        }
    }
}

__global__ void pad2d_kernel(const bf16* x, bf16* y, int64_t n, int64_t H, int64_t W, int left, int top, int64_t Ho,
                             int64_t Wo) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t plane = i / (Ho * Wo), r = (i / Wo) % Ho - top, c = i % Wo - left;
        y[i] = (r >= 0 && r < H && c >= 0 && c < W) ? x[(plane * H + r) * W + c] : __float2bfloat16_rn(0.0f);
    }
}

__global__ void upsample_nearest2x_kernel(const bf16* x, bf16* y, int64_t n, int64_t H, int64_t W) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t plane = i / (4 * H * W), r = (i / (2 * W)) % (2 * H), c = i % (2 * W);
        y[i] = x[(plane * H + r / 2) * W + c / 2];
    }
}

template <int W>
__global__ void add_bias_kernel(const bf16* x, const bf16* bias, bf16* y, int64_t rows, int64_t n_vec) {
    const int64_t total = rows * n_vec;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
        float v[W], b[W];
        load_bf16<W>(x + i * W, v);
        load_bf16<W>(bias + (i % n_vec) * W, b);
#pragma unroll
        for (int j = 0; j < W; ++j) v[j] += b[j];
        store_bf16<W>(y + i * W, v);
    }
}

// One block row of planes: blockIdx.y is the plane, the x blocks stride over its S elements in vectors of W.
template <int W>
__global__ void add_channel_bias_kernel(bf16* y, const bf16* bias, int64_t C, int64_t s_vec) {
    const int64_t plane = blockIdx.y;
    const float b = __bfloat162float(bias[plane % C]);
    bf16* row = y + plane * s_vec * W;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < s_vec; i += int64_t(gridDim.x) * blockDim.x) {
        float v[W];
        load_bf16<W>(row + i * W, v);
#pragma unroll
        for (int j = 0; j < W; ++j) v[j] += b;
        store_bf16<W>(row + i * W, v);
    }
}
}  // namespace

void launch_add_channel_bias(bf16* y, const bf16* bias, int64_t planes, int64_t C, int64_t S, cudaStream_t stream) {
    if (planes == 0 || S == 0) return;
    check(planes <= 65535, "add_channel_bias: ", planes, " planes exceed the grid's y dimension");
    const bool vec = S % kVec == 0;
    const int64_t n = vec ? S / kVec : S;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 64)),
                    static_cast<unsigned>(planes));
    if (vec) {
        add_channel_bias_kernel<kVec><<<grid, kThreads, 0, stream>>>(y, bias, C, n);
    } else {
        add_channel_bias_kernel<1><<<grid, kThreads, 0, stream>>>(y, bias, C, n);
    }
    FLUX2_CUDA_CHECK_LAUNCH("add_channel_bias_kernel");
}

void launch_transpose_last2(const bf16* in, const bf16* bias, bf16* out, int64_t outer, int64_t M, int64_t N,
                            cudaStream_t stream) {
    if (outer == 0 || M == 0 || N == 0) return;
    const dim3 grid(static_cast<unsigned>((N + kTile - 1) / kTile), static_cast<unsigned>((M + kTile - 1) / kTile),
                    static_cast<unsigned>(outer));
    transpose_kernel<<<grid, dim3(kTile, 8), 0, stream>>>(in, bias, out, M, N);
    FLUX2_CUDA_CHECK_LAUNCH("transpose_kernel");
}

void launch_pad2d(const bf16* x, bf16* y, int64_t planes, int64_t H, int64_t W, int left, int top, int64_t Ho,
                  int64_t Wo, cudaStream_t stream) {
    const int64_t n = planes * Ho * Wo;
    if (n == 0) return;
    pad2d_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n, H, W, left, top, Ho, Wo);
    FLUX2_CUDA_CHECK_LAUNCH("pad2d_kernel");
}

void launch_upsample_nearest2x(const bf16* x, bf16* y, int64_t planes, int64_t H, int64_t W, cudaStream_t stream) {
    const int64_t n = planes * 4 * H * W;
    if (n == 0) return;
    upsample_nearest2x_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, y, n, H, W);
    FLUX2_CUDA_CHECK_LAUNCH("upsample_nearest2x_kernel");
}

void launch_add_bias(const bf16* x, const bf16* bias, bf16* y, int64_t rows, int64_t N, cudaStream_t stream) {
    if (rows == 0 || N == 0) return;
    if (N % kVec == 0) {
        add_bias_kernel<kVec><<<grid_for(rows * N / kVec, kThreads), kThreads, 0, stream>>>(x, bias, y, rows, N / kVec);
    } else {
        add_bias_kernel<1><<<grid_for(rows * N, kThreads), kThreads, 0, stream>>>(x, bias, y, rows, N);
    }
    FLUX2_CUDA_CHECK_LAUNCH("add_bias_kernel");
}

}  // namespace cuda

namespace {
const cuda::bf16* in(const Tensor& t) { return static_cast<const cuda::bf16*>(t.raw()); }
cuda::bf16* out(Tensor& t) { return static_cast<cuda::bf16*>(t.raw()); }
}  // namespace

Tensor CudaBackend::transpose_last2(const Tensor& x) {
    expect_device_bf16(x, "transpose_last2", "x");
    check(x.ndim() >= 2, "transpose_last2: expected at least 2 dims, got ", shape_str(x.shape()));
    const int64_t M = x.dim(-2), N = x.dim(-1);
    Shape shape = x.shape();
    std::swap(shape[shape.size() - 2], shape.back());
    Tensor y = empty(shape, DType::BF16);
    cuda::launch_transpose_last2(in(x), nullptr, out(y), M * N ? x.numel() / (M * N) : 0, M, N, stream());
    return y;
}

Tensor CudaBackend::pad2d(const Tensor& x, int left, int right, int top, int bottom) {
    expect_device_bf16(x, "pad2d", "x");
    const Shape shape = pad2d_shape(x, left, right, top, bottom);
    const int64_t H = x.dim(-2), W = x.dim(-1), Ho = shape[shape.size() - 2], Wo = shape.back();
    Tensor y = empty(shape, DType::BF16);
    cuda::launch_pad2d(in(x), out(y), H * W ? x.numel() / (H * W) : 0, H, W, left, top, Ho, Wo, stream());
    return y;
}

Tensor CudaBackend::upsample_nearest2x(const Tensor& x) {
    expect_device_bf16(x, "upsample_nearest2x", "x");
    check(x.ndim() == 4, "upsample_nearest2x: expected [B, C, H, W], got ", shape_str(x.shape()));
    const int64_t H = x.dim(2), W = x.dim(3);
    Tensor y = empty({x.dim(0), x.dim(1), 2 * H, 2 * W}, DType::BF16);
    cuda::launch_upsample_nearest2x(in(x), out(y), x.dim(0) * x.dim(1), H, W, stream());
    return y;
}

Tensor CudaBackend::add_bias(const Tensor& x, const Tensor& bias) {
    expect_device_bf16(x, "add_bias", "x");
    expect_device_bf16(bias, "add_bias", "bias");
    const int64_t N = x.ndim() ? x.dim(-1) : 0;
    check(N > 0 && bias.numel() == N, "add_bias: bias of ", bias.numel(), " elements for ", shape_str(x.shape()));
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_add_bias(in(x), in(bias), out(y), x.numel() / N, N, stream());
    return y;
}

}  // namespace flux2
