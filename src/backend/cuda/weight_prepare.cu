// One-time conversions of a linear layer's checkpoint weight into the form its GEMM reads: BF16 for the bf16 path,
// E4M3 with per-output-channel scales for the fp8 path. They run on the device because the host would need
// seconds per large layer.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"
#include "core/error.h"

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

// E4M3 code of each E2M1 magnitude {0, .5, 1, 1.5, 2, 3, 4, 6} of one NVFP4 block once dequantized (times the block
// scale s) and divided by the row scale: codes 0-3 in the bytes of .x, 4-7 in .y. Every element of the block is one
// of these eight values with a sign, and E4M3 rounding is symmetric, so the table serves the block's 16 elements.
// The values are exactly fl(fl(m s) / row_scale) for each magnitude m, with two divisions instead of seven: scaling
// by a power of two commutes with fp32 rounding (no value here comes near fp32's subnormals or its overflow), so
// m = .5, 1, 2, 4 give powers of two times fl(s / row_scale), and m = 1.5, 3, 6 powers of two times
// fl(fl(1.5 s) / row_scale). With seven, the per-layer conversion of fp4-resident and streamed weights was bound by
// this arithmetic rather than by its bytes.
__device__ __forceinline__ uint2 block_code_table(float s, float row_scale) {
    const float a = s / row_scale, b = (1.5f * s) / row_scale;
    const uint32_t codes_0_3 = float2_to_e4m3x2(0.0f, 0.5f * a) | static_cast<uint32_t>(float2_to_e4m3x2(a, b)) << 16;
    const uint32_t codes_4_7 =
        float2_to_e4m3x2(2.0f * a, 2.0f * b) | static_cast<uint32_t>(float2_to_e4m3x2(4.0f * a, 4.0f * b)) << 16;
    return make_uint2(codes_0_3, codes_4_7);
}

// Four NVFP4 code bytes (8 elements, element 2i in the high nibble of byte i) -> eight E4M3 bytes in element order.
__device__ __forceinline__ uint2 decode_codes(uint32_t codes, uint2 table) {
    // Nibble k of `ordered` is element k.
    const uint32_t ordered = ((codes >> 4) & 0x0F0F0F0Fu) | ((codes << 4) & 0xF0F0F0F0u);
    // Magnitudes (low 3 bits of each nibble) index the table; PRMT looks up four bytes at once.
    const uint32_t index = ordered & 0x77777777u;
    // Signs (bit 3 of nibble k) go to bit 7 of byte k: spread four nibbles to the low nibbles of four bytes.
    auto signs = [](uint32_t nibbles) {
        uint32_t x = nibbles & 0xFFFFu;
        x = (x | (x << 8)) & 0x00FF00FFu;
        x = (x | (x << 4)) & 0x0F0F0F0Fu;
        return (x & 0x08080808u) << 4;
    };
    return make_uint2(__byte_perm(table.x, table.y, index & 0xFFFFu) | signs(ordered),
                      __byte_perm(table.x, table.y, index >> 16) | signs(ordered >> 16));
}

// One 16-element NVFP4 block (8 code bytes, E4M3 block scale code) -> 16 E4M3 bytes for the given row scale.
__device__ __forceinline__ uint4 convert_block(uint2 codes, uint8_t block_scale, float scale_2, float row_scale) {
    const uint2 table = block_code_table(e4m3_to_float(block_scale) * scale_2, row_scale);
    const uint2 lo = decode_codes(codes.x, table), hi = decode_codes(codes.y, table);
    return make_uint4(lo.x, lo.y, hi.x, hi.y);
}

// One row of `blocks` NVFP4 blocks -> E4M3 codes under row_scale, by the threads of one CTA. Each thread loads
// kInFlight blocks before converting any: with one load at a time the loads in flight per SM are too few to cover
// the memory latency (Little's law), and the rows are too short for more threads.
constexpr int kInFlight = 4;
__device__ __forceinline__ void convert_row(const uint2* __restrict__ codes, const uint8_t* __restrict__ block_scales,
                                            float scale_2, float row_scale, uint4* __restrict__ q, uint32_t blocks) {
    for (uint32_t first = threadIdx.x; first < blocks; first += kInFlight * blockDim.x) {
        uint2 c[kInFlight];
        uint8_t s[kInFlight];
#pragma unroll
        for (int u = 0; u < kInFlight; ++u) {
            const uint32_t b = first + u * blockDim.x;
            if (b < blocks) {
                c[u] = codes[b];
                s[u] = block_scales[b];
            }
        }
#pragma unroll
        for (int u = 0; u < kInFlight; ++u) {
            const uint32_t b = first + u * blockDim.x;
            if (b < blocks) q[b] = convert_block(c[u], s[u], scale_2, row_scale);
        }
    }
}

// At load, one CTA per row: amax of the dequantized row, then E4M3 codes of w / (amax / 448).
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
    const float scale = e4m3_row_scale(block_max(amax));
    if (threadIdx.x == 0) row_scales[r] = scale;
    convert_row(reinterpret_cast<const uint2*>(cr), sr, scale_2, scale, reinterpret_cast<uint4*>(q + r * cols),
                static_cast<uint32_t>(blocks));
}

// The same conversion with row_scales given (computed once by nvfp4_to_fp8_rows_kernel): the per-layer conversion of
// fp4-resident and streamed weights, so it must run near copy bandwidth. One CTA per row (no index division).
__global__ void nvfp4_to_fp8_scaled_kernel(const uint2* __restrict__ codes, const uint8_t* __restrict__ block_scales,
                                           float scale_2, const float* __restrict__ row_scales, uint4* __restrict__ q,
                                           uint32_t blocks) {
    const size_t row = static_cast<size_t>(blocks) * blockIdx.x;
    convert_row(codes + row, block_scales + row, scale_2, row_scales[blockIdx.x], q + row, blocks);
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
    const int64_t blocks = cols / kBlock;
    if (rows == 0 || blocks == 0) return;
    check(rows < (int64_t(1) << 31), "nvfp4_to_fp8_scaled: ", rows, " rows exceed one grid");
    // Enough threads for one pass of kInFlight blocks each where a row allows (dev's rows: 384 and 1536 blocks),
    // in whole warps, at most 256.
    const int threads = row_threads((blocks + kInFlight - 1) / kInFlight);
    nvfp4_to_fp8_scaled_kernel<<<static_cast<unsigned>(rows), threads, 0, stream>>>(
        reinterpret_cast<const uint2*>(codes), block_scales, scale_2, row_scales, reinterpret_cast<uint4*>(q),
        static_cast<uint32_t>(blocks));
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
