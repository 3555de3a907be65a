// The row passes around cuDNN's FP8 attention: per-tensor E4M3 quantization of Q, K and V (scales computed on
// the device, so nothing waits for the host), dequantization of the E4M3 output into a BF16 column range, and the
// error sums of `--attention-error`.
#include <algorithm>

#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"

namespace flux2::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kAmaxThreads = 512;
constexpr int kAmaxBlocks = kAttentionFp8AmaxBlocks;  // one partial per CTA, reduced by every quantizing CTA
static_assert(kAmaxBlocks == kThreads, "the quantizer reduces the partials one per thread");
// Vectors a thread loads before it uses the first: with one load in flight a thread, the few CTAs of the amax pass
// keep too little in flight to draw the memory's rate.
constexpr int kBatch = 4;

// The inputs as one grid dimension: blockIdx.y picks tensor first + blockIdx.y of Q, K, V (first = 2: V alone).
struct QkvSources {
    const bf16* src[3];
    int64_t row[3];  // elements between consecutive tokens
    uint8_t* dst[3];
    int first = 0;
};

// Vector i (8 elements) of a [rows, width] tensor whose rows are `row` elements apart. The index arithmetic is 32-bit
// (vector_count checks the count fits): in 64 bits the division took more issue slots than the loads.
__device__ __forceinline__ int64_t vector_offset(uint32_t i, uint32_t vectors_per_row, int64_t row) {
    const uint32_t r = i / vectors_per_row;
    return int64_t{r} * row + (i - r * vectors_per_row) * kVec;
}

// Loads the vectors i, i + stride, ... (kBatch of them, zeros past n) of a [rows, width] tensor; with Reverse, the
// vectors n - 1 - i, n - 1 - (i + stride), ... instead.
template <bool Reverse = false>
__device__ __forceinline__ void load_batch(const bf16* src, int64_t row, uint32_t per_row, uint32_t i, uint32_t stride,
                                           uint32_t n, float (&v)[kBatch][kVec]) {
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
        const uint32_t j = i + b * stride;
        if (j < n) {
            load_bf16<kVec>(src + vector_offset(Reverse ? n - 1 - j : j, per_row, row), v[b]);
        } else {
#pragma unroll
            for (int e = 0; e < kVec; ++e) v[b][e] = 0.0f;
        }
    }
}

__global__ void qkv_amax_kernel(QkvSources s, float* partials, uint32_t n, uint32_t per_row) {
    const int t = s.first + blockIdx.y;
    const bf16* src = s.src[t];
    const int64_t row = s.row[t];
    const uint32_t stride = gridDim.x * blockDim.x;
    float amax = 0.0f;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += kBatch * stride) {
        float v[kBatch][kVec];
        load_batch(src, row, per_row, i, stride, n, v);
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
#pragma unroll
            for (int e = 0; e < kVec; ++e) amax = fmaxf(amax, fabsf(v[b][e]));
        }
    }
    amax = block_max(amax);
    if (threadIdx.x == 0) partials[blockIdx.y * kAmaxBlocks + blockIdx.x] = amax;
}

__global__ void qkv_quantize_kernel(QkvSources s, const float* partials, float* scales, uint32_t n, uint32_t per_row) {
    const int t = s.first + blockIdx.y;
    const float amax = block_max(partials[blockIdx.y * kAmaxBlocks + threadIdx.x]);
    const float descale = e4m3_row_scale(amax);  // amax / 448: the tensor's largest value maps to 448
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        scales[kDescaleQ + t] = descale;
        if (t == 2) {
            // O is a convex combination of V's rows, so |O| <= amax(V): V's scale keeps O within E4M3 too.
            scales[kScaleO] = 1.0f / descale;
            scales[kDescaleO] = descale;
        }
        if (blockIdx.y == 0) {
            // The softmax probabilities exp(s - max) lie in [0, 1]: 1 maps to 448.
            scales[kScaleS] = kE4m3MaxF;
            scales[kDescaleS] = 1.0f / kE4m3MaxF;
        }
    }
    const bf16* src = s.src[t];
    const int64_t row = s.row[t];
    uint8_t* dst = s.dst[t];
    // From the last vector to the first: the amax pass read the tensor from first to last, so what it read last is
    // what the L2 still holds (dev's V is 57 MB, the H200's L2 50 MB).
    const uint32_t stride = gridDim.x * blockDim.x;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += kBatch * stride) {
        float v[kBatch][kVec];
        load_batch<true>(src, row, per_row, i, stride, n, v);
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
            const uint32_t j = i + b * stride;
            if (j < n) store_e4m3<kVec>(dst + size_t{n - 1 - j} * kVec, v[b], descale);
        }
    }
}

__global__ void dequantize_output_kernel(const uint8_t* o8, const float* o_descale, bf16* o, int64_t o_row, uint32_t n,
                                         uint32_t per_row) {
    const float descale = *o_descale;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        const uint2 packed = *reinterpret_cast<const uint2*>(o8 + size_t{i} * kVec);
        const uint8_t* codes = reinterpret_cast<const uint8_t*>(&packed);
        float v[kVec];
#pragma unroll
        for (int j = 0; j < kVec; ++j) v[j] = e4m3_to_float(codes[j]) * descale;
        store_bf16<kVec>(o + vector_offset(i, per_row, o_row), v);
    }
}

__global__ void row_scales_kernel(const float* descale, float* row_scales, uint32_t rows) {
    const float d = *descale;
    for (uint32_t r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) row_scales[r] = d;
}

__global__ void error_sums_kernel(const bf16* a, int64_t a_row, const bf16* b, int64_t b_row, float* sums, uint32_t n,
                                  uint32_t per_row) {
    float err = 0.0f, ref = 0.0f;
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float x[kVec], y[kVec];
        load_bf16<kVec>(a + vector_offset(i, per_row, a_row), x);
        load_bf16<kVec>(b + vector_offset(i, per_row, b_row), y);
#pragma unroll
        for (int j = 0; j < kVec; ++j) {
            err += (x[j] - y[j]) * (x[j] - y[j]);
            ref += y[j] * y[j];
        }
    }
    err = block_sum(err);
    ref = block_sum(ref);
    if (threadIdx.x == 0) {
        atomicAdd(&sums[0], err);
        atomicAdd(&sums[1], ref);
    }
}

// The vectors of a [rows, width] tensor, checked to fit the kernels' 32-bit indices with a grid's stride to spare.
uint32_t vector_count(int64_t rows, int64_t width) {
    const int64_t n = rows * (width / kVec);
    check(n < (int64_t{1} << 31), "FP8 attention passes: ", rows, " tokens of ", width,
          " values exceed the 2^31 vectors the kernels index");
    return static_cast<uint32_t>(n);
}

// The amax partials of `tensors` of s's inputs from s.first on, then (with `scales`) their conversion.
void amax(const QkvSources& s, int tensors, float* partials, int64_t rows, int64_t width, cudaStream_t stream) {
    qkv_amax_kernel<<<dim3(kAmaxBlocks, tensors), kAmaxThreads, 0, stream>>>(s, partials, vector_count(rows, width),
                                                                             static_cast<uint32_t>(width / kVec));
    FLUX2_CUDA_CHECK(cudaGetLastError());
}
void quantize(const QkvSources& s, int tensors, float* partials, float* scales, int64_t rows, int64_t width,
              cudaStream_t stream) {
    if (rows == 0) return;
    amax(s, tensors, partials, rows, width, stream);
    const uint32_t n = vector_count(rows, width);
    // At most as many CTAs as are resident at once, shared by the tensors: a second, partial wave would leave SMs
    // idle while it runs.
    const unsigned blocks =
        std::max<unsigned>(1, persistent_blocks(reinterpret_cast<const void*>(qkv_quantize_kernel), kThreads, 0,
                                                int64_t{grid_for(n, kThreads * kBatch)} * tensors) /
                                  tensors);
    qkv_quantize_kernel<<<dim3(blocks, tensors), kThreads, 0, stream>>>(s, partials, scales, n,
                                                                        static_cast<uint32_t>(width / kVec));
    FLUX2_CUDA_CHECK(cudaGetLastError());
}
}  // namespace

void launch_attention_fp8_quantize(const bf16* q, const bf16* k, const bf16* v, int64_t v_row, uint8_t* q8, uint8_t* k8,
                                   uint8_t* v8, float* partials, float* scales, int64_t rows, int64_t width,
                                   cudaStream_t stream) {
    quantize({{q, k, v}, {width, width, v_row}, {q8, k8, v8}}, 3, partials, scales, rows, width, stream);
}

void launch_attention_fp8_quantize_v(const bf16* v, int64_t v_row, uint8_t* v8, float* partials, float* scales,
                                     int64_t rows, int64_t width, cudaStream_t stream) {
    quantize({{nullptr, nullptr, v}, {0, 0, v_row}, {nullptr, nullptr, v8}, 2}, 1, partials, scales, rows, width,
             stream);
}

void launch_attention_fp8_quantize_qk(const bf16* q, const bf16* k, uint8_t* q8, uint8_t* k8, float* partials,
                                      float* scales, int64_t rows, int64_t width, cudaStream_t stream) {
    quantize({{q, k, nullptr}, {width, width, 0}, {q8, k8, nullptr}}, 2, partials, scales, rows, width, stream);
}

void launch_attention_fp8_amax_v(const bf16* v, int64_t v_row, float* partials, int64_t rows, int64_t width,
                                 cudaStream_t stream) {
    amax({{nullptr, nullptr, v}, {0, 0, v_row}, {nullptr, nullptr, nullptr}, 2}, 1, partials, rows, width, stream);
}

void launch_attention_fp8_dequantize(const uint8_t* o8, const float* descale, bf16* o, int64_t o_row, int64_t rows,
                                     int64_t width, cudaStream_t stream) {
    if (rows == 0) return;
    const uint32_t n = vector_count(rows, width);
    dequantize_output_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(o8, descale, o, o_row, n,
                                                                             static_cast<uint32_t>(width / kVec));
    FLUX2_CUDA_CHECK(cudaGetLastError());
}

void launch_attention_fp8_row_scales(const float* descale, float* row_scales, int64_t rows, cudaStream_t stream) {
    if (rows == 0) return;
    check(rows < (int64_t{1} << 31), "FP8 attention: ", rows, " row scales exceed the 2^31 the kernel indexes");
    row_scales_kernel<<<grid_for(static_cast<uint32_t>(rows), kThreads), kThreads, 0, stream>>>(
        descale, row_scales, static_cast<uint32_t>(rows));
    FLUX2_CUDA_CHECK(cudaGetLastError());
}

void launch_attention_error_sums(const bf16* a, int64_t a_row, const bf16* b, int64_t b_row, float* sums, int64_t rows,
                                 int64_t width, cudaStream_t stream) {
    FLUX2_CUDA_CHECK(cudaMemsetAsync(sums, 0, 2 * sizeof(float), stream));
    if (rows == 0) return;
    const uint32_t n = vector_count(rows, width);
    error_sums_kernel<<<std::min<unsigned>(grid_for(n, kThreads), 1024), kThreads, 0, stream>>>(
        a, a_row, b, b_row, sums, n, static_cast<uint32_t>(width / kVec));
    FLUX2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flux2::cuda
