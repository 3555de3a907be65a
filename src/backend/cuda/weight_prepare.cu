// One-time conversions of a linear layer's checkpoint weight into the form its GEMM reads: BF16 for the bf16 path,
// E4M3 with per-output-channel scales for the fp8 path. They run on the device because the host would need
// seconds per large layer.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"

namespace flux2::cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kBlock = 16;  // NVFP4 elements per block scale

// Element pair (2i, 2i+1) of an NVFP4 row from its code byte (element 2i in the high nibble).
__device__ __forceinline__ float2 nvfp4_pair(uint8_t byte, float block_scale) {
    return make_float2(e2m1_to_float(byte >> 4) * block_scale, e2m1_to_float(byte & 0xF) * block_scale);
}

// One thread per code byte.
__global__ void nvfp4_to_bf16_kernel(const uint8_t* codes, const uint8_t* block_scales, float scale_2, bf16* w,
                                     int64_t rows, int64_t cols) {
    const int64_t half = cols / 2, n = rows * half, blocks = cols / kBlock;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / half, k = (i % half) * 2;
        const float s = e4m3_to_float(block_scales[r * blocks + k / kBlock]) * scale_2;
        const float2 v = nvfp4_pair(codes[i], s);
        reinterpret_cast<__nv_bfloat162*>(w)[i] = __floats2bfloat162_rn(v.x, v.y);
    }
}

// One CTA per row: amax of the dequantized row, then E4M3 codes of w / (amax / 448).
__global__ void nvfp4_to_fp8_rows_kernel(const uint8_t* codes, const uint8_t* block_scales, float scale_2, uint8_t* q,
                                         float* row_scales, int64_t cols) {
    const int64_t r = blockIdx.x, half = cols / 2, blocks = cols / kBlock;
    const uint8_t* cr = codes + r * half;
    const uint8_t* sr = block_scales + r * blocks;
    float amax = 0.0f;
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
        const float2 v = nvfp4_pair(cr[i], e4m3_to_float(sr[(2 * i) / kBlock]) * scale_2);
        amax = fmaxf(amax, fmaxf(fabsf(v.x), fabsf(v.y)));
    }
    amax = block_max(amax);
    const float scale = amax > 0.0f ? amax / kE4m3MaxF : 1.0f;
    if (threadIdx.x == 0) row_scales[r] = scale;
    auto* qr = reinterpret_cast<uint16_t*>(q + r * cols);
    for (int64_t i = threadIdx.x; i < half; i += blockDim.x) {
        const float2 v = nvfp4_pair(cr[i], e4m3_to_float(sr[(2 * i) / kBlock]) * scale_2);
        qr[i] = float2_to_e4m3x2(v.x / scale, v.y / scale);
    }
}

// One thread per 16-element NVFP4 block (8 code bytes in, 16 E4M3 bytes out) with the row scales already known:
// the same arithmetic as nvfp4_to_fp8_rows_kernel, so the codes are identical, in one coalesced pass.
__global__ void nvfp4_to_fp8_scaled_kernel(const uint2* codes, const uint8_t* block_scales, float scale_2,
                                           const float* row_scales, uint4* q, int64_t rows, int64_t blocks) {
    const int64_t n = rows * blocks;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float s = e4m3_to_float(block_scales[i]) * scale_2, scale = row_scales[i / blocks];
        const uint2 c = codes[i];
        const uint8_t* bytes = reinterpret_cast<const uint8_t*>(&c);
        uint4 out;
        auto* o16 = reinterpret_cast<uint16_t*>(&out);
#pragma unroll
        for (int j = 0; j < 8; ++j) {
            const float2 v = nvfp4_pair(bytes[j], s);
            o16[j] = float2_to_e4m3x2(v.x / scale, v.y / scale);
        }
        q[i] = out;
    }
}

__global__ void fp8_to_bf16_kernel(const uint8_t* codes, float scale, bf16* w, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        w[i] = __float2bfloat16_rn(e4m3_to_float(codes[i]) * scale);
}

__global__ void f16_to_bf16_kernel(const uint16_t* in, bf16* out, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        __half_raw h;
        h.x = in[i];
        out[i] = __float2bfloat16_rn(__half2float(__half(h)));
    }
}

__global__ void fill_f32_kernel(float* p, float value, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        p[i] = value;
}
}  // namespace

void launch_nvfp4_to_bf16(const uint8_t* codes, const uint8_t* block_scales, float scale_2, bf16* w, int64_t rows,
                          int64_t cols, cudaStream_t stream) {
    const int64_t n = rows * (cols / 2);
    if (n == 0) return;
    nvfp4_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(codes, block_scales, scale_2, w, rows, cols);
    FLUX2_CUDA_CHECK_LAUNCH("nvfp4_to_bf16_kernel");
}

void launch_nvfp4_to_fp8_rows(const uint8_t* codes, const uint8_t* block_scales, float scale_2, uint8_t* q,
                              float* row_scales, int64_t rows, int64_t cols, cudaStream_t stream) {
    if (rows == 0) return;
    nvfp4_to_fp8_rows_kernel<<<rows, row_threads(cols / 2), 0, stream>>>(codes, block_scales, scale_2, q, row_scales,
                                                                         cols);
    FLUX2_CUDA_CHECK_LAUNCH("nvfp4_to_fp8_rows_kernel");
}

void launch_nvfp4_to_fp8_scaled(const uint8_t* codes, const uint8_t* block_scales, float scale_2,
                                const float* row_scales, uint8_t* q, int64_t rows, int64_t cols, cudaStream_t stream) {
    const int64_t blocks = cols / kBlock, n = rows * blocks;
    if (n == 0) return;
    nvfp4_to_fp8_scaled_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(
        reinterpret_cast<const uint2*>(codes), block_scales, scale_2, row_scales, reinterpret_cast<uint4*>(q), rows,
        blocks);
    FLUX2_CUDA_CHECK_LAUNCH("nvfp4_to_fp8_scaled_kernel");
}

void launch_fp8_to_bf16(const uint8_t* codes, float scale, bf16* w, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    fp8_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(codes, scale, w, n);
    FLUX2_CUDA_CHECK_LAUNCH("fp8_to_bf16_kernel");
}

void launch_f16_to_bf16(const uint16_t* in, bf16* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    f16_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(in, out, n);
    FLUX2_CUDA_CHECK_LAUNCH("f16_to_bf16_kernel");
}

void launch_fill_f32(float* p, float value, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    fill_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(p, value, n);
    FLUX2_CUDA_CHECK_LAUNCH("fill_f32_kernel");
}

}  // namespace flux2::cuda
