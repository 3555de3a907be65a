// LayerNorm over the last dim (no affine) followed by adaLN modulation: y = norm(x) * (1 + scale[b]) + shift[b].
// One CTA per row; mean and variance in fp32 by two passes over the row. A row of up to kMaxRowVectors vectors of 8
// a thread (every FLUX.2 width) is held in registers: x is read from memory once, all its loads in flight together,
// and the statistics, the amax and the output come from registers. The general kernels below re-read the row from
// L1/L2 for every pass, each pass waiting on the one before: the dev step's LayerNorms ran that way at about a
// third of the HBM's rate (PERFORMANCE.md).
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

// ---- The row in registers: thread t holds the V vectors at columns t * kVec + j * blockDim.x * kVec, as BF16
// (16 bytes a vector, half the registers of fp32). At most 128 threads a row, so that dev's 6144 columns take six
// vectors a thread: fewer threads and registers per row leave room for more rows in flight on an SM (measured
// against 192 and 256 threads a row). ----
constexpr int kMaxRowVectors = 8;
constexpr int kMaxRowThreads = 128;

// The first column of this thread's j-th vector.
__device__ __forceinline__ int64_t row_column(int j) { return (threadIdx.x + int64_t(j) * blockDim.x) * kVec; }

__device__ __forceinline__ void unpack(const uint4& raw, float (&v)[kVec]) {
    load_bf16<kVec>(reinterpret_cast<const bf16*>(&raw), v);
}

// This thread's sum of f(element) over its vectors of the row.
template <int V, class F>
__device__ __forceinline__ float sum_row(const uint4 (&raw)[V], int64_t D, F f) {
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (row_column(j) >= D) continue;
        float v[kVec];
        unpack(raw[j], v);
#pragma unroll
        for (int e = 0; e < kVec; ++e) sum += f(v[e]);
    }
    return sum;
}

// Loads the row into raw and returns its mean and 1 / std, in two passes as row_moments.
template <int V>
__device__ __forceinline__ float2 load_row(const bf16* xr, int64_t D, float eps, uint4 (&raw)[V]) {
    // Every load is issued before the first sum uses one: summing each vector as it arrives would wait out the
    // memory's latency V times in a row.
#pragma unroll
    for (int j = 0; j < V; ++j)
        if (row_column(j) < D) raw[j] = *reinterpret_cast<const uint4*>(xr + row_column(j));
    const float mean = block_sum(sum_row(raw, D, [](float v) { return v; })) / static_cast<float>(D);
    const float sq = sum_row(raw, D, [mean](float v) { return (v - mean) * (v - mean); });
    return make_float2(mean, rsqrtf(block_sum(sq) / static_cast<float>(D) + eps));
}

// raw = BF16(norm(x) * (1 + scale) + shift), in place; returns this thread's largest magnitude of it. The outputs
// are rounded to BF16 in pairs and their magnitudes compared as BF16 pairs (exact): fewer instructions than one
// value at a time through fp32, in a kernel whose issue slots, not its loads, set its pace (Nsight Compute).
template <int V>
__device__ __forceinline__ float modulate_row(const bf16* shift, const bf16* scale, int64_t D, float2 moments,
                                              uint4 (&raw)[V]) {
    __nv_bfloat162 amax2 = __float2bfloat162_rn(0.0f);
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (row_column(j) >= D) continue;
        const int64_t i = row_column(j);
        float v[kVec], sh[kVec], sc[kVec];
        unpack(raw[j], v);
        load_bf16<kVec>(shift + i, sh);
        load_bf16<kVec>(scale + i, sc);
        auto* out = reinterpret_cast<__nv_bfloat162*>(&raw[j]);
#pragma unroll
        for (int e = 0; e < kVec; e += 2) {
            // (v - mean) / std * (1 + scale) + shift, the gain 1 / std * (1 + scale) taken first
            const float y0 = fmaf(v[e] - moments.x, fmaf(moments.y, sc[e], moments.y), sh[e]);
            const float y1 = fmaf(v[e + 1] - moments.x, fmaf(moments.y, sc[e + 1], moments.y), sh[e + 1]);
            out[e / 2] = __floats2bfloat162_rn(y0, y1);
            amax2 = __hmax2(amax2, __habs2(out[e / 2]));
        }
    }
    return fmaxf(__low2float(amax2), __high2float(amax2));
}

template <int V>
__global__ void layer_norm_modulate_row_kernel(const bf16* x, const bf16* shift, const bf16* scale, bf16* y, int64_t L,
                                               int64_t D, float eps) {
    const int64_t r = blockIdx.x, b = r / L;
    uint4 raw[V];
    modulate_row<V>(shift + b * D, scale + b * D, D, load_row<V>(x + r * D, D, eps, raw), raw);
#pragma unroll
    for (int j = 0; j < V; ++j)
        if (row_column(j) < D) *reinterpret_cast<uint4*>(y + r * D + row_column(j)) = raw[j];
}

template <int V>
__global__ void layer_norm_modulate_fp8_row_kernel(const bf16* x, const bf16* shift, const bf16* scale, E4m3Rows out,
                                                   int64_t L, int64_t D, float eps) {
    const int64_t r = blockIdx.x, b = r / L;
    uint4 raw[V];
    const float amax = modulate_row<V>(shift + b * D, scale + b * D, D, load_row<V>(x + r * D, D, eps, raw), raw);
    const float s = e4m3_row_scale(block_max(amax), out.headroom);
    if (threadIdx.x == 0) out.scales[r] = s;
#pragma unroll
    for (int j = 0; j < V; ++j) {
        if (row_column(j) >= D) continue;
        float v[kVec];
        unpack(raw[j], v);
        store_e4m3<kVec>(out.q + r * out.ld + row_column(j), v, s);
    }
}

// Launches kernel<V> with V vectors a thread for a row of `vectors` (the fewest V that fits kMaxRowThreads threads);
// false if the row is wider than kMaxRowVectors * kMaxRowThreads vectors.
template <class Launch>
bool launch_row_in_registers(int64_t vectors, Launch&& launch) {
    const int64_t v = (vectors + kMaxRowThreads - 1) / kMaxRowThreads;
    if (v > kMaxRowVectors) return false;
    const int threads = row_threads((vectors + v - 1) / v);
    with_vector_count<kMaxRowVectors>(v, [&](auto vs) { launch(vs, threads); });
    return true;
}

// ---- Rows too wide for registers, or widths not a multiple of kVec: the row re-read for every pass. ----
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
    auto in_registers = [&](auto v, int threads) {
        layer_norm_modulate_row_kernel<decltype(v)::value><<<rows, threads, 0, stream>>>(x, shift, scale, y, L, D, eps);
    };
    if (D % kVec != 0) {
        layer_norm_modulate_kernel<1><<<rows, row_threads(D), 0, stream>>>(x, shift, scale, y, L, D, eps);
    } else if (!launch_row_in_registers(D / kVec, in_registers)) {
        layer_norm_modulate_kernel<kVec><<<rows, row_threads(D / kVec), 0, stream>>>(x, shift, scale, y, L, D, eps);
    }
    FLUX2_CUDA_CHECK_LAUNCH("layer_norm_modulate_kernel");
}

void launch_layer_norm_modulate_fp8(const bf16* x, const bf16* shift, const bf16* scale, E4m3Rows out, int64_t rows,
                                    int64_t L, int64_t D, float eps, cudaStream_t stream) {
    if (rows == 0 || D == 0) return;
    auto in_registers = [&](auto v, int threads) {
        layer_norm_modulate_fp8_row_kernel<decltype(v)::value>
            <<<rows, threads, 0, stream>>>(x, shift, scale, out, L, D, eps);
    };
    if (D % kVec != 0 || out.ld % kVec != 0) {
        layer_norm_modulate_fp8_kernel<1><<<rows, row_threads(D), 0, stream>>>(x, shift, scale, out, L, D, eps);
    } else if (!launch_row_in_registers(D / kVec, in_registers)) {
        layer_norm_modulate_fp8_kernel<kVec>
            <<<rows, row_threads(D / kVec), 0, stream>>>(x, shift, scale, out, L, D, eps);
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
