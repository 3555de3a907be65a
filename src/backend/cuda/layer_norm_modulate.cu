// LayerNorm over the last dim (no affine) followed by adaLN modulation: y = norm(x) * (1 + scale[b]) + shift[b].
// One CTA per row; mean and variance in fp32 by two passes over the row (it stays in L1/L2 between passes).
// layer_norm_modulate_for writes the E4M3 input of an FP8 GEMM instead (fused per-token quantization).
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
// Mean and 1 / std of one row, in fp32 by two passes (the row stays in L1/L2 between them).
template <int W>
__device__ __forceinline__ float2 row_moments(const bf16* xr, int64_t D, float eps) {
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
    return make_float2(mean, rsqrtf(block_sum(sq) / static_cast<float>(D) + eps));
}

// The W outputs at column i of a row: norm(x) * (1 + scale) + shift.
template <int W>
__device__ __forceinline__ void modulated(const bf16* xr, const bf16* shift, const bf16* scale, int64_t i,
                                          float2 moments, float (&v)[W]) {
    float sh[W], sc[W];
    load_bf16<W>(xr + i, v);
    load_bf16<W>(shift + i, sh);
    load_bf16<W>(scale + i, sc);
#pragma unroll
    for (int j = 0; j < W; ++j) v[j] = (v[j] - moments.x) * moments.y * (1.0f + sc[j]) + sh[j];
}

// One CTA per row.
template <int W>
__global__ void layer_norm_modulate_kernel(const bf16* x, const bf16* shift, const bf16* scale, bf16* y, int64_t L,
                                           int64_t D, float eps) {
    const int64_t r = blockIdx.x, b = r / L;
    const bf16* xr = x + r * D;
    const float2 moments = row_moments<W>(xr, D, eps);
    for (int64_t i = threadIdx.x * W; i < D; i += int64_t(blockDim.x) * W) {
        float v[W];
        modulated<W>(xr, shift + b * D, scale + b * D, i, moments, v);
        store_bf16<W>(y + r * D + i, v);
    }
}

// The same row quantized to E4M3 for the next FP8 GEMM: a pass for the amax of the BF16-rounded outputs, a pass
// writing their codes (both recompute the outputs from x, cheaper than keeping them).
template <int W>
__global__ void layer_norm_modulate_fp8_kernel(const bf16* x, const bf16* shift, const bf16* scale, E4m3Rows out,
                                               int64_t L, int64_t D, float eps) {
    const int64_t r = blockIdx.x, b = r / L;
    const bf16* xr = x + r * D;
    const float2 moments = row_moments<W>(xr, D, eps);
    const int64_t step = int64_t(blockDim.x) * W;
    float amax = 0.0f;
    for (int64_t i = threadIdx.x * W; i < D; i += step) {
        float v[W];
        modulated<W>(xr, shift + b * D, scale + b * D, i, moments, v);
#pragma unroll
        for (int j = 0; j < W; ++j) amax = fmaxf(amax, fabsf(round_to_bf16(v[j])));
    }
    const float s = e4m3_row_scale(block_max(amax), out.headroom);
    if (threadIdx.x == 0) out.scales[r] = s;
    for (int64_t i = threadIdx.x * W; i < D; i += step) {
        float v[W];
        modulated<W>(xr, shift + b * D, scale + b * D, i, moments, v);
#pragma unroll
        for (int j = 0; j < W; ++j) v[j] = round_to_bf16(v[j]);
        store_e4m3<W>(out.q + r * out.ld + i, v, s);
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

void launch_layer_norm_modulate_fp8(const bf16* x, const bf16* shift, const bf16* scale, E4m3Rows out, int64_t rows,
                                    int64_t L, int64_t D, float eps, cudaStream_t stream) {
    if (rows == 0 || D == 0) return;
    if (D % kVec == 0 && out.ld % kVec == 0) {
        layer_norm_modulate_fp8_kernel<kVec>
            <<<rows, row_threads(D / kVec), 0, stream>>>(x, shift, scale, out, L, D, eps);
    } else {
        layer_norm_modulate_fp8_kernel<1><<<rows, row_threads(D), 0, stream>>>(x, shift, scale, out, L, D, eps);
    }
    FLUX2_CUDA_CHECK_LAUNCH("layer_norm_modulate_fp8_kernel");
}

}  // namespace cuda

namespace {
void check_layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale) {
    const char* op = "layer_norm_modulate";
    expect_device_bf16(x, op, "x");
    expect_device_bf16(shift, op, "shift");
    expect_device_bf16(scale, op, "scale");
    check(x.ndim() == 3, op, ": expected x [B, L, D], got ", shape_str(x.shape()));
    const Shape per_sample{x.dim(0), x.dim(2)};
    check(shift.shape() == per_sample && scale.shape() == per_sample, op,
          ": shift and scale must be [B, D] = ", shape_str(per_sample), ", got ", shape_str(shift.shape()), " and ",
          shape_str(scale.shape()));
}
}  // namespace

Tensor CudaBackend::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) {
    FLUX2_PROFILE_OP("layer_norm_modulate");
    check_layer_norm_modulate(x, shift, scale);
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_layer_norm_modulate(static_cast<const cuda::bf16*>(x.raw()),
                                     static_cast<const cuda::bf16*>(shift.raw()),
                                     static_cast<const cuda::bf16*>(scale.raw()), static_cast<cuda::bf16*>(y.raw()),
                                     x.dim(0) * x.dim(1), x.dim(1), x.dim(2), eps, stream());
    return y;
}

Tensor CudaBackend::layer_norm_modulate_for(const LinearWeight& next, const Tensor& x, const Tensor& shift,
                                            const Tensor& scale, float eps) {
    if (!takes_fp8_input(next)) return layer_norm_modulate(x, shift, scale, eps);
    FLUX2_PROFILE_OP("layer_norm_modulate -> fp8");
    check_layer_norm_modulate(x, shift, scale);
    const int64_t ld = fp8_input_width(next);
    Tensor q = quantized_activations(x.shape(), ld);
    cuda::launch_layer_norm_modulate_fp8(static_cast<const cuda::bf16*>(x.raw()),
                                         static_cast<const cuda::bf16*>(shift.raw()),
                                         static_cast<const cuda::bf16*>(scale.raw()), input_rows(next, q),
                                         x.dim(0) * x.dim(1), x.dim(1), x.dim(2), eps, stream());
    return q;
}

}  // namespace flux2
