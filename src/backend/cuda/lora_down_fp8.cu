// A LoRA branch's down-projection on the E4M3 activations of its fp8 layer, t = s_x s_a (xq aq^T), and what follows
// it: t in BF16 for an up-projection beside the GEMM, or t's codes beside x's for a branch carried in the GEMM
// (lora_fp8_tail.h).
// t has only 32-64 columns, so the product is a pass over the activations: cuBLASLt's kernels for such skinny shapes
// read them at ~1.4 TB/s (a CTA per 128 tokens walks the whole of k, too few CTAs to keep every SM streaming). Here k
// is split too, so that two or three CTAs per SM stream their share through a cp.async pipeline; each writes fp32
// partial sums, and the second kernel adds them in split order (the result does not depend on timing).
// The products run as FP16 mma.sync (E4M3 values are exact in FP16, their products exact in the fp32 sums): Hopper
// has no FP8 mma.sync, and the compiler's emulation of it converts every fragment of both operands once per mma,
// which made the kernel conversion-bound. Here A comes already decoded to FP16 (launch_e4m3_to_f16, once per
// branch) and each x code is converted once.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"
#include "quant/lora_fp8_tail.h"

namespace flux2::cuda {

namespace {
constexpr int kWarps = 4;
constexpr int kTokensPerWarp = 32;  // two m16 tiles share each fragment of A
constexpr int kBlockM = kWarps * kTokensPerWarp;
constexpr int kBlockK = 128;  // codes per row and stage: 8 chunks of 16 bytes
constexpr int kStages = 3;
// CTAs per SM: the stages' shared memory allows three (four column blocks: 60 KB), the wider tiles two.
constexpr int ctas_per_sm(int nb) { return nb <= 4 ? 3 : 2; }
constexpr int kMinChunksPerSplit = 4;  // enough stages for the pipeline to pay
constexpr int kTailWarps = 4;          // the codes kernel: a warp per token, four tokens a CTA ...
constexpr int kTailKept = 2;           // ... two columns of t a lane kept between its passes

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
    const auto s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// d += a b for a 16x16 FP16 tile of activations (row major) and a 16x8 FP16 tile of A rows (column major).
__device__ __forceinline__ void mma_f16(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                        uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// 16 E4M3 codes -> 8 pairs of FP16 (pair i: codes 2i, 2i + 1, the first in the low half).
__device__ __forceinline__ void e4m3x16_to_f16x2(const uint4& q, uint32_t (&h)[8]) {
    const uint32_t w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const __half2_raw v =
                __nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(w[j] >> (16 * i)), __NV_E4M3);
            h[2 * j + i] = uint32_t(v.x) | uint32_t(v.y) << 16;
        }
    }
}

// Where 16-byte chunk c of a stage's row of x (8 chunks) lives: odd rows swap their halves, so that a quarter warp
// reading one chunk position of two neighbouring rows touches 8 distinct chunks (all 32 banks).
__device__ __forceinline__ int x_chunk_at(int row, int c) { return row * 8 + (c ^ ((row & 1) << 2)); }
// The same for a row of A in FP16 (16 chunks; a lane reads chunks 2t and 2t + 1 of its half): odd rows swap
// neighbouring chunks.
__device__ __forceinline__ int a_chunk_at(int row, int c) { return row * 16 + (c ^ (row & 1)); }

// partials[split][row][n] for the CTA's 128 tokens, 8 NB columns of t and share of k. The sum over k runs in any
// order, so each lane loads 16 consecutive codes of a row and gives them to the mma's as its k positions (2t, 2t+1,
// 2t+8, 2t+9) of four k16 steps: rows of x and of A are permuted alike, and a lane's fragments of a row are one
// 16-byte shared-memory read (two for A's FP16).
template <int NB>
__global__ void __launch_bounds__(kWarps * 32, ctas_per_sm(NB))
    lora_down_fp8_kernel(const uint8_t* __restrict__ x, int64_t ldx, const __half* __restrict__ a, int64_t a_rows,
                         int64_t rows, int64_t k, int64_t chunks_per_split, int64_t r_tot,
                         float* __restrict__ partials) {
    constexpr int kXChunks = kBlockM * 8, kAChunks = NB * 8 * 16;
    extern __shared__ uint4 smem[];
    uint4* xs = smem;
    uint4* as = smem + kStages * kXChunks;
    const int64_t m0 = int64_t(blockIdx.x) * kBlockM, n0 = int64_t(blockIdx.y) * 8 * NB;
    const int64_t first = int64_t(blockIdx.z) * chunks_per_split;
    const int64_t n_chunks = (k + kBlockK - 1) / kBlockK;
    const int steps = static_cast<int>(max(int64_t(0), min(n_chunks - first, chunks_per_split)));

    // Every stage, a thread copies the same 16-byte position of x's rows 16 apart and of A's rows 8 apart, one stage
    // of k further on each time: its sources are pointers kept across stages, its destinations fixed offsets, and
    // which of its rows exist is known up front (the copies' address arithmetic had been most of the kernel's
    // instructions, and the kernel bound by issuing them). A copy that must read zeros keeps its in-bounds or unused
    // source: cp.async with a source size of 0 reads nothing.
    constexpr int kThreads = kWarps * 32, kXCopies = kXChunks / kThreads, kACopies = kAChunks / kThreads;
    static_assert(kXChunks % kThreads == 0 && kAChunks % kThreads == 0);
    const int xc = threadIdx.x % 8, xr = threadIdx.x / 8, ac = threadIdx.x % 16, ar = threadIdx.x / 16;
    const uint8_t* x_src[kXCopies];
    const __half* a_src[kACopies];
    bool x_row[kXCopies], a_row[kACopies];
#pragma unroll
    for (int j = 0; j < kXCopies; ++j) {
        const int64_t row = m0 + xr + j * (kThreads / 8);
        x_row[j] = row < rows;
        x_src[j] = x + (x_row[j] ? row : 0) * ldx + xc * 16 + first * kBlockK;
    }
#pragma unroll
    for (int j = 0; j < kACopies; ++j) {
        const int64_t row = n0 + ar + j * (kThreads / 16);
        a_row[j] = row < a_rows;
        a_src[j] = a + (a_row[j] ? row : 0) * k + ac * 8 + first * kBlockK;
    }
    uint4* x_dst = xs + x_chunk_at(xr, xc);  // row + 16 j: the same swizzle, 128 j chunks on
    uint4* a_dst = as + a_chunk_at(ar, ac);  // row + 8 j: likewise
    int64_t k_next = first * kBlockK;        // the next stage's first code
    auto load = [&](int stage) {
        const bool x_in = k_next + xc * 16 < k, a_in = k_next + ac * 8 < k;  // codes past k read as zeros
#pragma unroll
        for (int j = 0; j < kXCopies; ++j) {
            const bool ok = x_in && x_row[j];  // as do missing rows
            cp_async16(x_dst + stage * kXChunks + j * (kThreads / 8) * 8, x_src[j], ok);
            x_src[j] += kBlockK;
        }
#pragma unroll
        for (int j = 0; j < kACopies; ++j) {
            const bool ok = a_in && a_row[j];
            cp_async16(a_dst + stage * kAChunks + j * (kThreads / 16) * 16, a_src[j], ok);
            a_src[j] += kBlockK;
        }
        k_next += kBlockK;
    };

    float acc[2][NB][4] = {};
    for (int s = 0; s < kStages - 1; ++s) {
        if (s < steps) load(s);
        cp_async_commit();  // empty groups keep the count the waits below rely on
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    for (int step = 0; step < steps; ++step) {
        cp_async_wait<kStages - 2>();  // this step's stage has landed (for this thread) ...
        __syncthreads();               // ... for every thread, and every thread is done with the stage reloaded next
        if (step + kStages - 1 < steps) load((step + kStages - 1) % kStages);
        cp_async_commit();
        const uint4* xst = xs + (step % kStages) * kXChunks;
        const uint4* ast = as + (step % kStages) * kAChunks;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
            uint32_t lo[2][8], hi[2][8];  // rows g and g + 8 of each m16 tile, 16 codes as FP16 pairs
#pragma unroll
            for (int mt = 0; mt < 2; ++mt) {
                const int row = warp * kTokensPerWarp + mt * 16 + g;
                e4m3x16_to_f16x2(xst[x_chunk_at(row, half * 4 + t)], lo[mt]);
                e4m3x16_to_f16x2(xst[x_chunk_at(row + 8, half * 4 + t)], hi[mt]);
            }
#pragma unroll
            for (int nb = 0; nb < NB; ++nb) {
                const int row = nb * 8 + g, c = half * 8 + 2 * t;
                const uint4 b0 = ast[a_chunk_at(row, c)], b1 = ast[a_chunk_at(row, c + 1)];
                const uint32_t b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
                for (int s = 0; s < 4; ++s) {
#pragma unroll
                    for (int mt = 0; mt < 2; ++mt)
                        mma_f16(acc[mt][nb], lo[mt][2 * s], hi[mt][2 * s], lo[mt][2 * s + 1], hi[mt][2 * s + 1],
                                b[2 * s], b[2 * s + 1]);
                }
            }
        }
    }
    cp_async_wait<0>();
    float* out = partials + int64_t(blockIdx.z) * rows * r_tot;
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
        const int64_t row = m0 + warp * kTokensPerWarp + mt * 16 + g;
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
            const int64_t col = n0 + nb * 8 + t * 2;
            if (row < rows) *reinterpret_cast<float2*>(out + row * r_tot + col) = {acc[mt][nb][0], acc[mt][nb][1]};
            if (row + 8 < rows)
                *reinterpret_cast<float2*>(out + (row + 8) * r_tot + col) = {acc[mt][nb][2], acc[mt][nb][3]};
        }
    }
}

__global__ void e4m3_to_f16_kernel(const uint8_t* q, __half* h, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        h[i] = __half(__nv_cvt_fp8_to_halfraw(q[i], __NV_E4M3));
}

// t[m, c] from the partial sums: s_x[m] s_a[c] times their sum in split order; columns past the computed ones are 0.
// The loads go out eight at a time before any is added (the sum's order stays the same): a chain of one load per
// split made these kernels wait on memory latency alone.
__device__ __forceinline__ float lora_t(const float* partials, const LoraDownSplit& s, int64_t rows, int64_t m,
                                        int64_t c, float x_scale, const float* a_scales) {
    if (c >= s.r_tot) return 0.0f;
    constexpr int kBatch = 8;
    const float* p = partials + m * s.r_tot + c;
    const int64_t stride = rows * s.r_tot;
    float sum = 0.0f;
    for (int64_t i0 = 0; i0 < s.splits; i0 += kBatch) {
        float v[kBatch];
#pragma unroll
        for (int j = 0; j < kBatch; ++j) v[j] = i0 + j < s.splits ? p[(i0 + j) * stride] : 0.0f;
#pragma unroll
        for (int j = 0; j < kBatch; ++j) sum += v[j];
    }
    return sum * x_scale * a_scales[c];
}

__global__ void lora_down_bf16_kernel(const float* partials, LoraDownSplit s, const float* x_scales,
                                      const float* a_scales, bf16* t, int64_t rows, int64_t r) {
    const int64_t n = rows * r;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t m = i / r, c = i % r;
        t[i] = __float2bfloat16_rn(lora_t(partials, s, rows, m, c, x_scales[m], a_scales));
    }
}

// A warp per token: the largest t code decides whether the token's scale must grow (lora_fp8_tail.h), then its codes
// are rescaled if so (a token whose branch is large next to its own values; with a strong LoRA that can be most
// tokens, so the rescaling moves 16 codes a lane) and t's codes written.
__global__ void lora_tail_fp8_kernel(const float* partials, LoraDownSplit s, const float* a_scales, const float* factor,
                                     E4m3Rows x, int64_t rows, int64_t k, int64_t r) {
    const int64_t m = int64_t(blockIdx.x) * kTailWarps + threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    if (m >= rows) return;
    const float sx = x.scales[m];
    // t f of the row's first columns kept from the first pass (the partial sums are read once); any further
    // columns are summed again for the write.
    auto scaled_t = [&](int64_t c) { return lora_t(partials, s, rows, m, c, sx, a_scales) * factor[c]; };
    float kept[kTailKept];
    float largest = 0.0f;
#pragma unroll
    for (int j = 0; j < kTailKept; ++j) {
        const int64_t c = lane + int64_t(j) * 32;
        kept[j] = c < r ? scaled_t(c) : 0.0f;
        largest = fmaxf(largest, fabsf(kept[j]));
    }
    for (int64_t c = lane + int64_t(kTailKept) * 32; c < r; c += 32) largest = fmaxf(largest, fabsf(scaled_t(c)));
    largest = warp_max(largest);  // every lane has read sx before lane 0 may write it below
    const float p = lora_fp8_tail_rescale(largest, sx);
    uint8_t* row = x.q + m * x.ld;
    if (p > 1.0f) {
        const float inv_p = 1.0f / p;  // a power of two: exact
        // 16-byte accesses where the row allows them (the GEMM's rows always do)
        const bool vec = k % 16 == 0 && reinterpret_cast<uintptr_t>(row) % 16 == 0;
        for (int64_t i = lane * (vec ? 16 : 1); i < k; i += 32 * (vec ? 16 : 1)) {
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
        if (lane == 0) x.scales[m] = sx * p;
    }
    const float inv = 1.0f / (sx * p);
#pragma unroll
    for (int j = 0; j < kTailKept; ++j) {
        const int64_t c = lane + int64_t(j) * 32;
        if (c < r) row[k + c] = float_to_e4m3(kept[j] * inv);
    }
    for (int64_t c = lane + int64_t(kTailKept) * 32; c < r; c += 32) row[k + c] = float_to_e4m3(scaled_t(c) * inv);
}

// The tile's width follows the rank: every column computed costs mma time, not just the padded ones' bytes.
int tile_blocks(int64_t r) { return r <= 32 ? 4 : r <= 48 ? 6 : 8; }
}  // namespace

int64_t lora_down_fp8_columns(int64_t r) {
    const int64_t width = 8 * tile_blocks(r);
    return (r + width - 1) / width * width;
}

LoraDownSplit plan_lora_down_fp8(int64_t rows, int64_t k, int64_t r, int sm_count) {
    check(rows >= 0 && k > 0 && k % 16 == 0 && r > 0, "LoRA down-projection: ", rows, " rows of ", k, " codes, rank ",
          r, " (k must be a positive multiple of 16)");
    LoraDownSplit s;
    s.nb = tile_blocks(r);
    s.r_tot = lora_down_fp8_columns(r);
    const int64_t n_tiles = s.r_tot / (8 * s.nb);
    const int64_t ctas = std::max<int64_t>(1, (rows + kBlockM - 1) / kBlockM * n_tiles);
    const int64_t n_chunks = (k + kBlockK - 1) / kBlockK;
    // A CTA for every slot of the GPU, each with at least a few stages of k.
    const int64_t want = std::max<int64_t>(1, ctas_per_sm(s.nb) * int64_t(sm_count) / ctas);
    const int64_t splits = std::clamp<int64_t>(want, 1, std::max<int64_t>(1, n_chunks / kMinChunksPerSplit));
    s.chunks_per_split = (n_chunks + splits - 1) / splits;
    s.splits = (n_chunks + s.chunks_per_split - 1) / s.chunks_per_split;
    return s;
}

void launch_lora_down_fp8(const uint8_t* xq, int64_t ldx, const __half* a, int64_t a_rows, int64_t rows, int64_t k,
                          const LoraDownSplit& s, float* partials, cudaStream_t stream) {
    if (rows == 0) return;
    const dim3 grid(static_cast<unsigned>((rows + kBlockM - 1) / kBlockM), static_cast<unsigned>(s.r_tot / (8 * s.nb)),
                    static_cast<unsigned>(s.splits));
    auto run = [&](auto nb) {
        const auto kernel = lora_down_fp8_kernel<nb.value>;
        const int bytes = kStages * (kBlockM + nb.value * 8 * 2) * kBlockK;  // x's codes and A's FP16
        allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), bytes);
        kernel<<<grid, kWarps * 32, bytes, stream>>>(xq, ldx, a, a_rows, rows, k, s.chunks_per_split, s.r_tot,
                                                     partials);
    };
    switch (s.nb) {
        case 4:
            run(std::integral_constant<int, 4>{});
            break;
        case 6:
            run(std::integral_constant<int, 6>{});
            break;
        default:
            run(std::integral_constant<int, 8>{});
            break;
    }
    FLUX2_CUDA_CHECK_LAUNCH("lora_down_fp8_kernel");
}

void launch_e4m3_to_f16(const uint8_t* q, __half* h, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    e4m3_to_f16_kernel<<<grid_for(n, 256), 256, 0, stream>>>(q, h, n);
    FLUX2_CUDA_CHECK_LAUNCH("e4m3_to_f16_kernel");
}

void launch_lora_down_bf16(const float* partials, const LoraDownSplit& s, const float* x_scales, const float* a_scales,
                           bf16* t, int64_t rows, int64_t r, cudaStream_t stream) {
    if (rows == 0) return;
    lora_down_bf16_kernel<<<grid_for(rows * r, 256), 256, 0, stream>>>(partials, s, x_scales, a_scales, t, rows, r);
    FLUX2_CUDA_CHECK_LAUNCH("lora_down_bf16_kernel");
}

void launch_lora_tail_fp8(const float* partials, const LoraDownSplit& s, const float* a_scales, const float* factor,
                          E4m3Rows x, int64_t rows, int64_t k, int64_t r, cudaStream_t stream) {
    if (rows == 0 || r == 0) return;
    lora_tail_fp8_kernel<<<static_cast<unsigned>((rows + kTailWarps - 1) / kTailWarps), kTailWarps * 32, 0, stream>>>(
        partials, s, a_scales, factor, x, rows, k, r);
    FLUX2_CUDA_CHECK_LAUNCH("lora_tail_fp8_kernel");
}

}  // namespace flux2::cuda
