#pragma once
// Device helpers shared by the elementwise and row kernels: BF16 vector loads/stores and reductions.
// Row kernels run one CTA (or one warp) per row; statistics are accumulated in fp32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <type_traits>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launchers.h"

namespace flux2::cuda {

// Elements per vector access: 8 BF16 = 16 bytes when a row length is a multiple of 8 (every FLUX.2 width),
// otherwise 1.
constexpr int kVec = 8;

template <int W>
__device__ __forceinline__ void load_bf16(const bf16* p, float (&v)[W]) {
    if constexpr (W == 8) {
        uint4 raw = *reinterpret_cast<const uint4*>(p);
        const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            float2 f = __bfloat1622float2(h[i]);
            v[2 * i] = f.x;
            v[2 * i + 1] = f.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < W; ++i) v[i] = __bfloat162float(p[i]);
    }
}

template <int W>
__device__ __forceinline__ void store_bf16(bf16* p, const float (&v)[W]) {
    if constexpr (W == 8) {
        uint4 raw;
        __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
        for (int i = 0; i < 4; ++i) h[i] = __floats2bfloat162_rn(v[2 * i], v[2 * i + 1]);
        *reinterpret_cast<uint4*>(p) = raw;
    } else {
#pragma unroll
        for (int i = 0; i < W; ++i) p[i] = __float2bfloat16_rn(v[i]);
    }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the CTA, returned to every thread. May be called several times in one kernel.
__device__ __forceinline__ float block_sum(float v) {
    __shared__ float partial[32];
    __syncthreads();  // the previous call's readers are done with `partial`
    v = warp_sum(v);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = (blockDim.x + 31) / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < n_warps ? partial[lane] : 0.0f;
    return warp_sum(v);
}

// Max over the CTA of non-negative values (idle lanes contribute 0), returned to every thread.
__device__ __forceinline__ float block_max(float v) {
    __shared__ float partial[32];
    __syncthreads();
    v = warp_max(v);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, n_warps = (blockDim.x + 31) / 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < n_warps ? partial[lane] : 0.0f;
    return warp_max(v);
}

// The fast division (2 ulp) keeps SwiGLU memory-bound; for v below about -87 the denominator overflows and the
// result is the limit, -0.
__device__ __forceinline__ float silu(float v) { return __fdividef(v, 1.0f + __expf(-v)); }

// Grid size for a grid-stride loop over n items with `threads` per CTA (enough CTAs to fill any current GPU).
inline unsigned grid_for(int64_t n, int threads) {
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks > 65536) blocks = 65536;
    return static_cast<unsigned>(blocks > 0 ? blocks : 1);
}

// Threads for a one-CTA-per-row kernel: one per vector of the row, rounded to whole warps, 32..256.
inline int row_threads(int64_t vectors) {
    int64_t t = (vectors + 31) / 32 * 32;
    return static_cast<int>(t < 32 ? 32 : (t > 256 ? 256 : t));
}

// Lets `kernel` launch with up to `bytes` of dynamic shared memory (above the default 48 KB it must opt in). The
// opt-in belongs to the current device, so it is made once per kernel and device; call it before the launch, outside
// CUDA-graph recordings the first time (the kernels that need it first run in an eager step).
inline void allow_dynamic_shared_memory(const void* kernel, int bytes) {
    static std::mutex mutex;
    static std::set<std::pair<const void*, int>> done;
    int device = 0;
    FLUX2_CUDA_CHECK(cudaGetDevice(&device));
    const std::lock_guard<std::mutex> lock(mutex);
    if (done.emplace(kernel, device).second)
        FLUX2_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
}

// Calls f(integral_constant<int, V>) for the smallest V in 1..Max with V >= v: a run-time count of vectors a
// thread as the compile-time one a kernel holds in registers (v <= Max; the caller checks).
template <int Max, int V = 1, class F>
void with_vector_count(int64_t v, F&& f) {
    if constexpr (V < Max) {
        if (v > V) return with_vector_count<Max, V + 1>(v, f);
    }
    f(std::integral_constant<int, V>{});
}

// CTAs of a persistent grid over `items` rows (RowStream): as many as the device holds at once at `threads` threads
// and `smem` bytes of dynamic shared memory, at most one a row. Looked up once per kernel, device and CTA shape.
inline unsigned persistent_blocks(const void* kernel, int threads, size_t smem, int64_t items) {
    static std::mutex mutex;
    static std::map<std::tuple<const void*, int, int, size_t>, int64_t> resident;
    int device = 0;
    FLUX2_CUDA_CHECK(cudaGetDevice(&device));
    const std::lock_guard<std::mutex> lock(mutex);
    auto [it, fresh] = resident.try_emplace({kernel, device, threads, smem}, 0);
    if (fresh) {
        int per_sm = 0, sms = 0;
        FLUX2_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
        FLUX2_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
        it->second = int64_t{std::max(per_sm, 1)} * sms;
    }
    return static_cast<unsigned>(std::min(items, it->second));
}

}  // namespace flux2::cuda
