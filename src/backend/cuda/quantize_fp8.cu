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
__global__ void quantize_rows_fp8_kernel(const bf16* x, E4m3Rows out, int64_t cols) {
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
    const float scale = e4m3_row_scale(amax, out.headroom);
    if (threadIdx.x == 0) out.scales[r] = scale;
    for (int64_t i = threadIdx.x * W; i < cols; i += step) {
        float v[W];
        load_bf16<W>(xr + i, v);
        store_e4m3<W>(out.q + r * out.ld + i, v, scale);
    }
}
}  // namespace

void launch_quantize_rows_fp8(const bf16* x, E4m3Rows out, int64_t rows, int64_t cols, cudaStream_t stream) {
    if (rows == 0) return;
    if (cols % kVec == 0 && out.ld % kVec == 0) {
        quantize_rows_fp8_kernel<kVec><<<rows, row_threads(cols / kVec), 0, stream>>>(x, out, cols);
    } else {
        quantize_rows_fp8_kernel<1><<<rows, row_threads(cols), 0, stream>>>(x, out, cols);
    }
    FLUX2_CUDA_CHECK_LAUNCH("quantize_rows_fp8_kernel");
}

}  // namespace cuda

namespace {
size_t scales_offset(int64_t rows, int64_t cols) { return (static_cast<size_t>(rows * cols) + 15) / 16 * 16; }
}  // namespace

Tensor CudaBackend::quantized_activations(const Shape& shape, int64_t ld) {
    check(!shape.empty(), "quantized_activations: empty shape");
    const int64_t cols = shape.back(), rows = cols ? shape_numel(shape) / cols : 0;
    check(ld >= cols, "quantized_activations: rows of ", cols, " values in rows of ", ld, " codes");
    Tensor bytes = empty({static_cast<int64_t>(scales_offset(rows, ld)) + rows * 4}, DType::U8);
    Shape stored = shape;
    stored.back() = ld;
    return bytes.view(stored, DType::F8_E4M3, 0);
}

Fp8Activations CudaBackend::fp8_parts(const Tensor& q) {
    check(q.dtype() == DType::F8_E4M3 && q.device() == Device::cuda && q.ndim() >= 1,
          "fp8_parts: expected quantized activations (F8_E4M3 on the GPU), got ", dtype_name(q.dtype()));
    const int64_t cols = q.dim(-1), rows = cols ? q.numel() / cols : 0;
    char* base = static_cast<char*>(q.raw());
    return {Tensor::wrap({rows, cols}, DType::F8_E4M3, Device::cuda, base, q.storage()),
            Tensor::wrap({rows}, DType::F32, Device::cuda, base + scales_offset(rows, cols), q.storage())};
}

cuda::E4m3Rows CudaBackend::e4m3_rows(const Fp8Activations& a) {
    return {static_cast<uint8_t*>(a.codes.raw()), static_cast<float*>(a.scales.raw()), a.codes.dim(1)};
}

Fp8Activations CudaBackend::quantize_fp8(const Tensor& x) { return quantize_rows(x, x.ndim() ? x.dim(-1) : 0, 1.0f); }

Fp8Activations CudaBackend::quantize_fp8_for(const LinearWeight& w, const Tensor& x) {
    return quantize_rows(x, fp8_input_width(w), fp8_input_headroom(w));
}

Fp8Activations CudaBackend::quantize_rows(const Tensor& x, int64_t ld, float headroom) {
    FLUX2_PROFILE_OP("quantize activations fp8");
    expect_device_bf16(x, "quantize_fp8", "x");
    check(x.ndim() >= 1, "quantize_fp8: x must have at least one dimension");
    const int64_t cols = x.dim(-1), rows = cols ? x.numel() / cols : 0;
    check(ld >= cols, "quantize_fp8: rows of ", cols, " values in rows of ", ld, " codes");
    Fp8Activations a{empty({rows, ld}, DType::F8_E4M3), empty({rows}, DType::F32)};
    cuda::E4m3Rows out = e4m3_rows(a);
    out.headroom = headroom;
    cuda::launch_quantize_rows_fp8(static_cast<const cuda::bf16*>(x.raw()), out, rows, cols, stream());
    return a;
}

}  // namespace flux2
