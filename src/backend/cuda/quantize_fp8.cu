// Per-token (per-row) E4M3 quantization of BF16 activations for the FP8 GEMM: scale = amax(|row|) / 448, so the
// largest element maps to the top of the E4M3 range. One CTA per row, two passes over it.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"
#include "quant/lora_fp8_tail.h"

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
    const float scale = e4m3_row_scale(amax);
    if (threadIdx.x == 0) out.scales[r] = scale;
    for (int64_t i = threadIdx.x * W; i < cols; i += step) {
        float v[W];
        load_bf16<W>(xr + i, v);
        store_e4m3<W>(out.q + r * out.ld + i, v, scale);
    }
}

// One CTA per row: the largest t code decides whether the row's scale must grow (lora_fp8_tail.h), then the row's
// codes are rescaled if so (a token whose branch is large next to its own values; with a strong LoRA that can be
// most tokens, so the rescaling moves 16 codes a thread) and t's codes written.
__global__ void lora_tail_fp8_kernel(const bf16* t, const float* factor, E4m3Rows x, int64_t k, int64_t r) {
    const int64_t m = blockIdx.x;
    const bf16* tm = t + m * r;
    const float s = x.scales[m];
    float largest = 0.0f;
    for (int64_t c = threadIdx.x; c < r; c += blockDim.x)
        largest = fmaxf(largest, fabsf(__bfloat162float(tm[c]) * factor[c]));
    largest = block_max(largest);  // its barriers also order every thread's read of s before the write below
    const float p = lora_fp8_tail_rescale(largest, s);
    uint8_t* row = x.q + m * x.ld;
    if (p > 1.0f) {
        const float inv_p = 1.0f / p;  // a power of two: exact
        // 16-byte accesses where the row allows them (the GEMM's rows always do)
        const bool vec = k % 16 == 0 && reinterpret_cast<uintptr_t>(row) % 16 == 0;
        for (int64_t i = threadIdx.x * (vec ? 16 : 1); i < k; i += int64_t(blockDim.x) * (vec ? 16 : 1)) {
            if (vec) {
                uint4 v = *reinterpret_cast<const uint4*>(row + i);
                uint8_t* b = reinterpret_cast<uint8_t*>(&v);
#pragma unroll
                for (int j = 0; j < 16; ++j) b[j] = float_to_e4m3(e4m3_to_float(b[j]) * inv_p);
                *reinterpret_cast<uint4*>(row + i) = v;
            } else {
                row[i] = float_to_e4m3(e4m3_to_float(row[i]) * inv_p);
            }
        }
        if (threadIdx.x == 0) x.scales[m] = s * p;
    }
    const float inv = 1.0f / (s * p);
    for (int64_t c = threadIdx.x; c < r; c += blockDim.x)
        row[k + c] = float_to_e4m3(__bfloat162float(tm[c]) * factor[c] * inv);
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

void launch_lora_tail_fp8(const bf16* t, const float* factor, E4m3Rows x, int64_t rows, int64_t k, int64_t r,
                          cudaStream_t stream) {
    if (rows == 0 || r == 0) return;
    lora_tail_fp8_kernel<<<rows, 128, 0, stream>>>(t, factor, x, k, r);
    FLUX2_CUDA_CHECK_LAUNCH("lora_tail_fp8_kernel");
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

Fp8Activations CudaBackend::quantize_fp8(const Tensor& x) { return quantize_fp8(x, x.ndim() ? x.dim(-1) : 0); }

Fp8Activations CudaBackend::quantize_fp8(const Tensor& x, int64_t ld) {
    FLUX2_PROFILE_OP("quantize activations fp8");
    expect_device_bf16(x, "quantize_fp8", "x");
    check(x.ndim() >= 1, "quantize_fp8: x must have at least one dimension");
    const int64_t cols = x.dim(-1), rows = cols ? x.numel() / cols : 0;
    check(ld >= cols, "quantize_fp8: rows of ", cols, " values in rows of ", ld, " codes");
    Fp8Activations a{empty({rows, ld}, DType::F8_E4M3), empty({rows}, DType::F32)};
    cuda::launch_quantize_rows_fp8(static_cast<const cuda::bf16*>(x.raw()), e4m3_rows(a), rows, cols, stream());
    return a;
}

}  // namespace flux2
