// The row passes around cuDNN's FP8 attention: per-tensor E4M3 quantization of Q, K and V (scales computed on
// the device, so nothing waits for the host), dequantization of the E4M3 output into a BF16 column range, and the
// error sums of `--attention-error`.
#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"

namespace flux2::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kAmaxBlocks = kAttentionFp8AmaxBlocks;  // one partial per CTA, reduced by every quantizing CTA
static_assert(kAmaxBlocks == kThreads, "the quantizer reduces the partials one per thread");

// The inputs as one grid dimension: blockIdx.y picks tensor first + blockIdx.y of Q, K, V (first = 2: V alone).
struct QkvSources {
    const bf16* src[3];
    int64_t row[3];  // elements between consecutive tokens
    uint8_t* dst[3];
    int first = 0;
};

// Vector i (8 elements) of a [rows, width] tensor whose rows are `row` elements apart.
__device__ __forceinline__ int64_t vector_offset(int64_t i, int64_t vectors_per_row, int64_t row) {
    return (i / vectors_per_row) * row + (i % vectors_per_row) * kVec;
}

__global__ void qkv_amax_kernel(QkvSources s, float* partials, int64_t rows, int64_t width) {
    const int t = s.first + blockIdx.y;
    const int64_t per_row = width / kVec, n = rows * per_row;
    float amax = 0.0f;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float v[kVec];
        load_bf16<kVec>(s.src[t] + vector_offset(i, per_row, s.row[t]), v);
#pragma unroll
        for (int j = 0; j < kVec; ++j) amax = fmaxf(amax, fabsf(v[j]));
    }
    amax = block_max(amax);
    if (threadIdx.x == 0) partials[blockIdx.y * kAmaxBlocks + blockIdx.x] = amax;
}

__global__ void qkv_quantize_kernel(QkvSources s, const float* partials, float* scales, int64_t rows, int64_t width) {
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
    const int64_t per_row = width / kVec, n = rows * per_row;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float v[kVec];
        load_bf16<kVec>(s.src[t] + vector_offset(i, per_row, s.row[t]), v);
        store_e4m3<kVec>(s.dst[t] + i * kVec, v, descale);
    }
}

__global__ void dequantize_output_kernel(const uint8_t* o8, const float* scales, bf16* o, int64_t o_row, int64_t rows,
                                         int64_t width) {
    const float descale = scales[kDescaleO];
    const int64_t per_row = width / kVec, n = rows * per_row;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const uint2 packed = *reinterpret_cast<const uint2*>(o8 + i * kVec);
        const uint8_t* codes = reinterpret_cast<const uint8_t*>(&packed);
        float v[kVec];
#pragma unroll
        for (int j = 0; j < kVec; ++j) v[j] = e4m3_to_float(codes[j]) * descale;
        store_bf16<kVec>(o + vector_offset(i, per_row, o_row), v);
    }
}

__global__ void error_sums_kernel(const bf16* a, int64_t a_row, const bf16* b, int64_t b_row, float* sums, int64_t rows,
                                  int64_t width) {
    const int64_t per_row = width / kVec, n = rows * per_row;
    float err = 0.0f, ref = 0.0f;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
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

unsigned grid_vectors(int64_t rows, int64_t width) { return grid_for(rows * (width / kVec), kThreads); }

// The amax partials of `tensors` of s's inputs from s.first on, then (with `scales`) their conversion.
void amax(const QkvSources& s, int tensors, float* partials, int64_t rows, int64_t width, cudaStream_t stream) {
    qkv_amax_kernel<<<dim3(kAmaxBlocks, tensors), kThreads, 0, stream>>>(s, partials, rows, width);
    FLUX2_CUDA_CHECK(cudaGetLastError());
}
void quantize(const QkvSources& s, int tensors, float* partials, float* scales, int64_t rows, int64_t width,
              cudaStream_t stream) {
    if (rows == 0) return;
    amax(s, tensors, partials, rows, width, stream);
    const unsigned blocks = std::min<unsigned>(grid_vectors(rows, width), 4 * kAmaxBlocks);
    qkv_quantize_kernel<<<dim3(blocks, tensors), kThreads, 0, stream>>>(s, partials, scales, rows, width);
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

void launch_attention_fp8_dequantize(const uint8_t* o8, const float* scales, bf16* o, int64_t o_row, int64_t rows,
                                     int64_t width, cudaStream_t stream) {
    if (rows == 0) return;
    dequantize_output_kernel<<<grid_vectors(rows, width), kThreads, 0, stream>>>(o8, scales, o, o_row, rows, width);
    FLUX2_CUDA_CHECK(cudaGetLastError());
}

void launch_attention_error_sums(const bf16* a, int64_t a_row, const bf16* b, int64_t b_row, float* sums, int64_t rows,
                                 int64_t width, cudaStream_t stream) {
    FLUX2_CUDA_CHECK(cudaMemsetAsync(sums, 0, 2 * sizeof(float), stream));
    if (rows == 0) return;
    const unsigned blocks = std::min<unsigned>(grid_vectors(rows, width), 1024);
    error_sums_kernel<<<blocks, kThreads, 0, stream>>>(a, a_row, b, b_row, sums, rows, width);
    FLUX2_CUDA_CHECK(cudaGetLastError());
}

}  // namespace flux2::cuda
