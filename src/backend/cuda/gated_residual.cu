// Gated residual update in place: x += gate[b] * y (adaLN gate of every FLUX.2 block output).
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;

// d_vec = D / W vectors per row.
template <int W>
__global__ void gated_residual_kernel(bf16* x, const bf16* gate, const bf16* y, int64_t rows, int64_t L,
                                      int64_t d_vec) {
    const int64_t n = rows * d_vec, D = d_vec * W;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / d_vec, c = (i % d_vec) * W;
        float vx[W], vg[W], vy[W];
        load_bf16<W>(x + r * D + c, vx);
        load_bf16<W>(gate + (r / L) * D + c, vg);
        load_bf16<W>(y + r * D + c, vy);
#pragma unroll
        for (int j = 0; j < W; ++j) vx[j] += vg[j] * vy[j];
        store_bf16<W>(x + r * D + c, vx);
    }
}
__global__ void scale_by_gate_kernel(const float* scales, const bf16* gate, float* out, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = scales[i] * __bfloat162float(gate[i]);
}
__global__ void scale_rows_by_gate_kernel(const bf16* b, const bf16* gate, bf16* out, int64_t n, int64_t r) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n * r; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __float2bfloat16(__bfloat162float(b[i]) * __bfloat162float(gate[i / r]));
}
}  // namespace

void launch_scale_rows_by_gate(const bf16* b, const bf16* gate, bf16* out, int64_t n, int64_t r, cudaStream_t stream) {
    if (n == 0 || r == 0) return;
    scale_rows_by_gate_kernel<<<grid_for(n * r, kThreads), kThreads, 0, stream>>>(b, gate, out, n, r);
    FLUX2_CUDA_CHECK_LAUNCH("scale_rows_by_gate_kernel");
}

void launch_scale_by_gate(const float* scales, const bf16* gate, float* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    scale_by_gate_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(scales, gate, out, n);
    FLUX2_CUDA_CHECK_LAUNCH("scale_by_gate_kernel");
}

void launch_gated_residual(bf16* x, const bf16* gate, const bf16* y, int64_t rows, int64_t L, int64_t D,
                           cudaStream_t stream) {
    if (rows == 0 || D == 0) return;
    if (D % kVec == 0) {
        gated_residual_kernel<kVec>
            <<<grid_for(rows * (D / kVec), kThreads), kThreads, 0, stream>>>(x, gate, y, rows, L, D / kVec);
    } else {
        gated_residual_kernel<1><<<grid_for(rows * D, kThreads), kThreads, 0, stream>>>(x, gate, y, rows, L, D);
    }
    FLUX2_CUDA_CHECK_LAUNCH("gated_residual_kernel");
}

}  // namespace cuda

void check_gated_residual(const Tensor& x, const Tensor& gate, const char* op) {
    expect_device_bf16(x, op, "x");
    expect_device_bf16(gate, op, "gate");
    check(x.ndim() == 3, op, ": expected x [B, L, D], got ", shape_str(x.shape()));
    check(gate.shape() == Shape{x.dim(0), x.dim(2)}, op, ": gate must be [B, D] = [", x.dim(0), ", ", x.dim(2),
          "], got ", shape_str(gate.shape()));
}

void CudaBackend::gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) {
    FLUX2_PROFILE_OP("gated_residual");
    const char* op = "gated_residual";
    check_gated_residual(x, gate, op);
    expect_device_bf16(y, op, "y");
    check(x.shape() == y.shape(), op, ": x ", shape_str(x.shape()), " and y ", shape_str(y.shape()), " differ");
    cuda::launch_gated_residual(static_cast<cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(gate.raw()),
                                static_cast<const cuda::bf16*>(y.raw()), x.dim(0) * x.dim(1), x.dim(1), x.dim(2),
                                stream());
}

}  // namespace flux2
