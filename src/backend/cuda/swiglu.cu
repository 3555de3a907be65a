// swiglu: [rows, 2M] -> [rows, M], y = silu(x[:, :M]) * x[:, M:] (the FLUX.2 gated MLP).
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;

// One thread per W outputs; m_vec = M / W. Rows of x start every x_row elements, rows of y every y_row.
template <int W>
__global__ void swiglu_kernel(const bf16* x, int64_t x_row, bf16* y, int64_t y_row, int64_t rows, int64_t m_vec) {
    const int64_t n = rows * m_vec, m = m_vec * W;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / m_vec, j = (i % m_vec) * W;
        float gate[W], up[W];
        load_bf16<W>(x + r * x_row + j, gate);
        load_bf16<W>(x + r * x_row + m + j, up);
#pragma unroll
        for (int k = 0; k < W; ++k) gate[k] = silu(gate[k]) * up[k];
        store_bf16<W>(y + r * y_row + j, gate);
    }
}
}  // namespace

void launch_swiglu_strided(const bf16* x, int64_t x_row, bf16* y, int64_t y_row, int64_t rows, int64_t m,
                           cudaStream_t stream) {
    if (rows == 0 || m == 0) return;
    // 16-byte vectors need every row and both halves to start on a 16-byte boundary.
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0 &&
                         x_row % kVec == 0 && y_row % kVec == 0;
    if (m % kVec == 0 && aligned) {
        swiglu_kernel<kVec>
            <<<grid_for(rows * (m / kVec), kThreads), kThreads, 0, stream>>>(x, x_row, y, y_row, rows, m / kVec);
    } else {
        swiglu_kernel<1><<<grid_for(rows * m, kThreads), kThreads, 0, stream>>>(x, x_row, y, y_row, rows, m);
    }
    FLUX2_CUDA_CHECK_LAUNCH("swiglu_kernel");
}

void launch_swiglu(const bf16* x, bf16* y, int64_t rows, int64_t m, cudaStream_t stream) {
    launch_swiglu_strided(x, 2 * m, y, m, rows, m, stream);
}

}  // namespace cuda

Tensor CudaBackend::swiglu(const Tensor& x) {
    expect_device_bf16(x, "swiglu", "x");
    const int64_t two_m = x.dim(-1);
    check(two_m % 2 == 0, "swiglu: last dim ", two_m, " of ", shape_str(x.shape()), " is odd");
    Shape out_shape = x.shape();
    out_shape.back() = two_m / 2;
    Tensor y = empty(out_shape, DType::BF16);
    const int64_t rows = two_m ? x.numel() / two_m : 0;
    cuda::launch_swiglu(static_cast<const cuda::bf16*>(x.raw()), static_cast<cuda::bf16*>(y.raw()), rows, two_m / 2,
                        stream());
    return y;
}

}  // namespace flux2
