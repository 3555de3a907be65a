// Per-token (per-row) E4M3 quantization of BF16 activations for the FP8 GEMM: scale = amax(|row|) / 448, so the
// largest element maps to the top of the E4M3 range. One CTA per row, two passes over it.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
template <int W>
__global__ void quantize_rows_fp8_kernel(const bf16* x, uint8_t* q, float* scales, int64_t cols) {
    const int64_t r = blockIdx.x;
    const bf16* xr = x + r * cols;
    const int64_t step = int64_t(blockDim.x) * W;
    float amax = 0.0f;
    for (int64_t i = threadIdx.x * W; i < cols; i += step) {
        float v[W];
        load_bf16<W>(xr + i, v);
#pragma unroll
        for (int j = 0; j < W; ++j) amax = fmaxf(amax, fabsf(v[j]));
    }
    amax = block_max(amax);
    const float scale = amax > 0.0f ? amax / kE4m3MaxF : 1.0f;
    if (threadIdx.x == 0) scales[r] = scale;
    for (int64_t i = threadIdx.x * W; i < cols; i += step) {
        float v[W];
        load_bf16<W>(xr + i, v);
        if constexpr (W == 8) {
            uint2 packed;
            uint16_t* p = reinterpret_cast<uint16_t*>(&packed);
#pragma unroll
            for (int j = 0; j < 4; ++j) p[j] = float2_to_e4m3x2(v[2 * j] / scale, v[2 * j + 1] / scale);
            *reinterpret_cast<uint2*>(q + r * cols + i) = packed;
        } else {
            q[r * cols + i] = float_to_e4m3(v[0] / scale);
        }
    }
}
}  // namespace

void launch_quantize_rows_fp8(const bf16* x, uint8_t* q, float* scales, int64_t rows, int64_t cols,
                              cudaStream_t stream) {
    if (rows == 0) return;
    if (cols % kVec == 0) {
        quantize_rows_fp8_kernel<kVec><<<rows, row_threads(cols / kVec), 0, stream>>>(x, q, scales, cols);
    } else {
        quantize_rows_fp8_kernel<1><<<rows, row_threads(cols), 0, stream>>>(x, q, scales, cols);
    }
    FLUX2_CUDA_CHECK_LAUNCH("quantize_rows_fp8_kernel");
}

}  // namespace cuda

Fp8Activations CudaBackend::quantize_fp8(const Tensor& x) {
    expect_device_bf16(x, "quantize_fp8", "x");
    check(x.ndim() >= 1, "quantize_fp8: x must have at least one dimension");
    const int64_t cols = x.dim(-1), rows = cols ? x.numel() / cols : 0;
    Fp8Activations a{empty({rows, cols}, DType::F8_E4M3), empty({rows}, DType::F32)};
    cuda::launch_quantize_rows_fp8(static_cast<const cuda::bf16*>(x.raw()), static_cast<uint8_t*>(a.codes.raw()),
                                   static_cast<float*>(a.scales.raw()), rows, cols, stream());
    return a;
}

}  // namespace flux2
