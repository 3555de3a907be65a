#pragma once
// Device code of flux2's FP8 attention for head dim 128 on Hopper (sm_90a), FlashAttention-3 style
// (attention_fp8_sm90.cu launches it; bench/attention_fp8_lab/ checks and times it alone; docs/PERFORMANCE.md
// records how it was found). One CTA per 128 query rows of one head:
// * warpgroup 2 copies with TMA: Q and K_0, then per stage K_{j+1} and V_j (STAGES stages, full/empty mbarriers);
// * warpgroups 0 and 1 own 64 query rows each. Per KV tile of BN tokens a consumer issues S = Q K^T (wgmma, both
//   operands in shared memory) and O += P V (wgmma, P from registers) together, and runs the online softmax of the
//   next S (log2 domain; P scaled so that 1 maps to 448, as cuDNN's FP8 SDPA does) while P V is on the tensor cores.
// FP8 wgmma takes both operands K-major, so V arrives transposed: vt8 [B, H, Lp / 32, 128, 32], V^T in chunks of 32
// tokens (a KV tile is whole chunks, which TMA lays out as the wgmma's 32-byte-swizzled operand), the tokens of a
// chunk in vt_pos order, so that the S accumulator's registers are P's A fragment with no shuffles.
// Device code and headers only, so that the lab compiles it without the library.
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp8.h>

#include <cmath>
#include <cstdint>

#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/mbarrier.cuh"

namespace flux2::cuda::fa8 {

constexpr int kD = 128, kBM = 128, kStages = 3, kThreads = 384;  // 2 consumer warpgroups + 1 producer warpgroup
constexpr int kQTile = kBM * kD;                                 // bytes of Q's E4M3 tile
template <int BN>
constexpr int kKvTile = BN* kD;  // bytes of one K or V tile
// Dynamic shared memory: Q, K_0, kStages x (K, V), 1024 bytes of alignment slack, the mbarriers.
template <int BN>
constexpr int kSmemBytes = kQTile + kKvTile<BN>*(1 + 2 * kStages) + 1024 + 256;

// kv position of a token within its 32-token chunk of vt8: the order in which the S accumulator's registers become
// the P fragment's k positions (pack_p).
__host__ __device__ inline int vt_pos(int x) {
    return (x & 16) | (((x & 7) >> 1) << 2) | (((x >> 3) & 1) << 1) | (x & 1);
}

// Shared memory from a 1024-byte aligned base (the 128-byte swizzle's atoms): Q, K_0, kStages x K, kStages x V, then
// the mbarriers: Q's, kStages "full" (the producer's copies landed), kStages "empty" (the consumers are done).
template <int BN>
struct Smem {
    uint32_t base;
    __device__ uint32_t q() const { return base; }
    __device__ uint32_t k0() const { return base + kQTile; }
    __device__ uint32_t k(int s) const { return base + kQTile + kKvTile<BN> * (1 + s); }
    __device__ uint32_t v(int s) const { return base + kQTile + kKvTile<BN> * (1 + kStages + s); }
    __device__ uint32_t q_bar() const { return base + kQTile + kKvTile<BN> * (1 + 2 * kStages); }
    __device__ uint32_t full(int s) const { return q_bar() + 8 * (1 + s); }
    __device__ uint32_t empty(int s) const { return q_bar() + 8 * (1 + kStages + s); }
};

// wgmma m64nNk32, E4M3 x E4M3 -> f32: A and B from shared memory (SS, N = BN for S), or A from registers (RS,
// N = 128 for P V). A thread's N / 2 accumulators are operands %0 ... (the register lists below).
#define FA8_REGS_64                                                                                    \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, " \
    "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "  \
    "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, "  \
    "%59, %60, %61, %62, %63}"
#define FA8_REGS_96                                                                                    \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, " \
    "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "  \
    "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, "  \
    "%59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, "  \
    "%78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95}"
#define FA8_REGS_112                                                                                   \
    "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, " \
    "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, "  \
    "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, "  \
    "%59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, "  \
    "%78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, "  \
    "%97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111}"
#define FA8_ACC8(i)                                                                                             \
    "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), "+f"(d[i + 6]), \
        "+f"(d[i + 7])
#define FA8_OPS_64 \
    FA8_ACC8(0), FA8_ACC8(8), FA8_ACC8(16), FA8_ACC8(24), FA8_ACC8(32), FA8_ACC8(40), FA8_ACC8(48), FA8_ACC8(56)
#define FA8_OPS_96 FA8_OPS_64, FA8_ACC8(64), FA8_ACC8(72), FA8_ACC8(80), FA8_ACC8(88)
#define FA8_OPS_112 FA8_OPS_96, FA8_ACC8(96), FA8_ACC8(104)
// SS: descriptors a and b are operands %R and %R+1, scale_d %R+2 (R = the accumulator count).
#define FA8_WGMMA_SS(NN, R, A1, A2, A3)                                                                        \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %" #A3                                                      \
                 ", 0;\n"                                                                                      \
                 "wgmma.mma_async.sync.aligned.m64n" #NN "k32.f32.e4m3.e4m3 " FA8_REGS_##R ", %" #A1 ", %" #A2 \
                                                                                           ", p, 1, 1;\n}\n"   \
                 : FA8_OPS_##R                                                                                 \
                 : "l"(a), "l"(b), "r"(scale_d))
template <int N>
__device__ __forceinline__ void wgmma_ss(float (&d)[N / 2], uint64_t a, uint64_t b, int scale_d) {
    static_assert(N == 128 || N == 192 || N == 224, "S tiles of 128, 192 or 224 tokens");
    if constexpr (N == 128)
        FA8_WGMMA_SS(128, 64, 64, 65, 66);
    else if constexpr (N == 192)
        FA8_WGMMA_SS(192, 96, 96, 97, 98);
    else
        FA8_WGMMA_SS(224, 112, 112, 113, 114);
}
__device__ __forceinline__ void wgmma_rs(float (&d)[64], const uint32_t* a, uint64_t b, int scale_d) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 " FA8_REGS_64
        ", {%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
        : FA8_OPS_64
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Compiler fences: the registers a wgmma reads or writes are not moved across its issue or wait.
template <int N>
__device__ __forceinline__ void reg_fence(float (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void reg_fence(uint32_t (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+r"(r[i])::"memory");
}

// Matrix descriptors of K-major operand tiles: rows x 128 bytes with the 128-byte swizzle (Q, K: 8-row atoms of
// 1024 bytes), rows x 32 bytes with the 32-byte swizzle (a chunk of V^T: 8-row atoms of 256).
__device__ __forceinline__ uint64_t desc_sw128(uint32_t addr) {
    return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (uint64_t{1} << 16) | (uint64_t{1024 >> 4} << 32) |
           (uint64_t{1} << 62);
}
__device__ __forceinline__ uint64_t desc_sw32(uint32_t addr) {
    return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (uint64_t{1} << 16) | (uint64_t{256 >> 4} << 32) |
           (uint64_t{3} << 62);
}

struct Params {
    const float* q_descale;
    const float* k_descale;
    const float* v_descale;
    __nv_bfloat16* o;  // BF16 output [B, L, H, 128], tokens o_row elements apart; or null and
    int64_t o_row;
    uint8_t* o8;  // E4M3 output [B, L, H, 128] packed, with V's descale (|O| <= amax |V|)
    int L, H;
    float softmax_scale;
};

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLog2P = 8.807354922057604f;  // log2(448)

__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
// The online softmax of one S tile (raw products of the codes; `scale` turns them into log2-domain logits): masks
// the columns past `valid`, updates the row maxima m, returns in corr the factors that rescale O and l, and leaves
// 448 exp2(logit - m) in s, whose row sums go into l. A thread holds rows grp and grp + 8 of its warp's 16, columns
// 8 j + 2 quad + {0, 1}.
template <int BN>
__device__ __forceinline__ void softmax_tile(float (&s)[BN / 2], float (&m)[2], float (&l)[2], float (&corr)[2],
                                             float scale, int valid, int quad) {
    if (valid < BN) {
#pragma unroll
        for (int j = 0; j < BN / 8; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e)
                if (8 * j + 2 * quad + e >= valid) s[4 * j + e] = s[4 * j + 2 + e] = -INFINITY;
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        mx[0] = fmaxf(mx[0], fmaxf(s[4 * j], s[4 * j + 1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[4 * j + 2], s[4 * j + 3]));
    }
    float bias[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffff, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffff, mx[r], 2));
        const float mn = fmaxf(m[r], mx[r] * scale);
        corr[r] = ex2(m[r] - mn);
        m[r] = mn;
        bias[r] = kLog2P - mn;
    }
    float sum[2] = {0.f, 0.f};
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            s[4 * j + e] = ex2(fmaf(s[4 * j + e], scale, bias[e >> 1]));
            sum[e >> 1] += s[4 * j + e];
        }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + sum[r];
}

// The probabilities (x448) of softmax_tile as the A fragments of the P V wgmma: k position 4 quad + i of a 32-wide
// chunk holds the accumulator's column 2 quad + {0, 1, 8, 9}[i] (vt_pos orders V's tokens to match).
template <int BN>
__device__ __forceinline__ void pack_p(const float (&s)[BN / 2], uint32_t (&p)[BN / 8]) {
#pragma unroll
    for (int kk = 0; kk < BN / 32; ++kk) {
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int j = 4 * kk + 2 * h;
#pragma unroll
            for (int r = 0; r < 2; ++r) {
                const uint32_t lo = float2_to_e4m3x2(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]);
                const uint32_t hi = float2_to_e4m3x2(s[4 * j + 4 + 2 * r], s[4 * j + 5 + 2 * r]);
                p[4 * kk + 2 * h + r] = lo | (hi << 16);
            }
        }
    }
}

__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int x, int y, uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(
            dst),
        "l"(map), "r"(x), "r"(y), "r"(bar)
        : "memory");
}
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const CUtensorMap* map, int x, int y, int z, int w,
                                            uint32_t bar) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
        "[%6];" ::"r"(dst),
        "l"(map), "r"(x), "r"(y), "r"(z), "r"(w), "r"(bar)
        : "memory");
}

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FLUX2_FA8_DEVICE_CODE 1
// Warpgroup wg (0 or 1) of the CTA: query rows 64 wg .. 64 wg + 63 of the tile, n KV tiles.
template <int BN>
__device__ __forceinline__ void consumer(const Params& p, Smem<BN> sm, int wg, int warp, int lane, int n, int q_tile,
                                         int h, int b) {
    const int L = p.L, quad = lane & 3, grp = lane >> 2;
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;\n" ::);
    const float scale = p.q_descale[0] * p.k_descale[0] * p.softmax_scale * kLog2e;
    const uint32_t sQw = sm.q() + wg * 64 * 128;

    float s[BN / 2], o[64];
#pragma unroll
    for (int i = 0; i < 64; ++i) o[i] = 0.f;
    uint32_t pf[BN / 8];
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, corr[2];

    mbar_wait(sm.q_bar(), 0);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_ss<BN>(s, desc_sw128(sQw + kk * 32), desc_sw128(sm.k0() + kk * 32), kk);
    wgmma_commit();
    wgmma_wait<0>();
    reg_fence(s);
    softmax_tile<BN>(s, m, l, corr, scale, L, quad);
    pack_p<BN>(s, pf);

    // Stage j's copies landed and the registers settled for the wgmma.
    auto stage_ready = [&](int j) {
        mbar_wait(sm.full(j % kStages), (j / kStages) & 1);
        reg_fence(o);
        reg_fence(pf);
        wgmma_fence();
    };
    auto issue_pv = [&](int st) {
#pragma unroll
        for (int kk = 0; kk < BN / 32; ++kk) wgmma_rs(o, pf + 4 * kk, desc_sw32(sm.v(st) + kk * 32 * kD), 1);
        wgmma_commit();
    };
    // Iteration j: S of tile j + 1 and O += P_j V_j in flight together; the softmax of tile j + 1 runs while
    // P_j V_j is still on the tensor cores, and P_{j+1} replaces P_j once that is done.
    for (int j = 0; j + 1 < n; ++j) {
        const int st = j % kStages;
        stage_ready(j);
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wgmma_ss<BN>(s, desc_sw128(sQw + kk * 32), desc_sw128(sm.k(st) + kk * 32), kk);
        wgmma_commit();
        issue_pv(st);
        wgmma_wait<1>();
        reg_fence(s);
        softmax_tile<BN>(s, m, l, corr, scale, L - (j + 1) * BN, quad);
        // A branch on the softmax's result (never taken: l >= 1 once a row has seen its maximum): without it ptxas
        // hoists the wait below above the softmax, so that nothing of the softmax overlaps P V.
        if (!(l[0] >= 0.f)) {
            wgmma_wait<0>();
            asm volatile("exit;");
        }
        wgmma_wait<0>();
        reg_fence(o);
        reg_fence(pf);
        if (lane == 0) mbar_arrive(sm.empty(st));
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            o[4 * i] *= corr[0];
            o[4 * i + 1] *= corr[0];
            o[4 * i + 2] *= corr[1];
            o[4 * i + 3] *= corr[1];
        }
        pack_p<BN>(s, pf);
    }
    stage_ready(n - 1);  // the last tile: P V alone
    issue_pv((n - 1) % kStages);
    wgmma_wait<0>();
    reg_fence(o);

    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(0xffffffff, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffff, l[r], 2);
        inv[r] = 1.0f / l[r];
    }
    const float dv = p.v_descale[0];
    const int row0 = q_tile * kBM + wg * 64 + warp * 16 + grp;
    const int64_t row_stride = int64_t(p.H) * kD;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        const int row = row0 + 8 * r;
        if (row >= L) continue;  // the tile's rows past L (another batch's or none)
        if (p.o) {
            __nv_bfloat16* dst = p.o + (int64_t(b) * L + row) * p.o_row + h * kD + 2 * quad;
#pragma unroll
            for (int j = 0; j < 16; ++j)
                *reinterpret_cast<__nv_bfloat162*>(dst + 8 * j) =
                    __floats2bfloat162_rn(o[4 * j + 2 * r] * inv[r] * dv, o[4 * j + 2 * r + 1] * inv[r] * dv);
        } else {
            uint8_t* dst = p.o8 + (int64_t(b) * L + row) * row_stride + h * kD + 2 * quad;
#pragma unroll
            for (int j = 0; j < 16; ++j)
                *reinterpret_cast<uint16_t*>(dst + 8 * j) =
                    float2_to_e4m3x2(o[4 * j + 2 * r] * inv[r], o[4 * j + 2 * r + 1] * inv[r]);
        }
    }
}
#else
#define FLUX2_FA8_DEVICE_CODE 0
#endif

// The attention of one (128 query rows, head, batch): grid (ceil(L / 128), H, B), kThreads threads,
// kSmemBytes<BN> of dynamic shared memory. tm_q and tm_k read the [B * L, H * 128] codes in boxes of 128 x 128 and
// 128 x BN bytes with the 128-byte swizzle, tm_v reads vt8 [B * H, Lp / 32, 128, 32] in boxes of BN / 32 chunks with
// the 32-byte swizzle (zeros past Lp). Built for another architecture the kernel does nothing (compiled_in says).
template <int BN>
__global__ void __launch_bounds__(kThreads, 1)
    attention_kernel(const __grid_constant__ CUtensorMap tm_q, const __grid_constant__ CUtensorMap tm_k,
                     const __grid_constant__ CUtensorMap tm_v, Params p) {
#if FLUX2_FA8_DEVICE_CODE
    extern __shared__ uint8_t smem_raw[];
    const Smem<BN> sm{(shared_address(smem_raw) + 1023) & ~1023u};
    const int tid = threadIdx.x, wg = tid >> 7, warp = (tid >> 5) & 3, lane = tid & 31;
    const int q_tile = blockIdx.x, h = blockIdx.y, b = blockIdx.z, L = p.L;
    const int n = (L + BN - 1) / BN;  // KV tiles
    if (tid == 0) {
        mbar_init(sm.q_bar(), 1);
        for (int s = 0; s < kStages; ++s) {
            mbar_init(sm.full(s), 1);
            mbar_init(sm.empty(s), 8);  // lane 0 of each consumer warp
        }
        mbar_init_fence();
    }
    __syncthreads();

    if (wg == 2) {  // producer warpgroup: one thread issues the copies
        asm volatile("setmaxnreg.dec.sync.aligned.u32 40;\n" ::);
        if (tid == 256) {
            // Rows of the [B * L, H * 128] views: a tile reaching into the next batch's rows is masked (K) or not
            // stored (Q) by the consumers; past the last row TMA fills zeros.
            const int q_row = b * L + q_tile * kBM, k_row = b * L, bh = b * p.H + h;
            mbar_expect_tx(sm.q_bar(), kQTile + kKvTile<BN>);
            tma_load_2d(sm.q(), &tm_q, h * kD, q_row, sm.q_bar());
            tma_load_2d(sm.k0(), &tm_k, h * kD, k_row, sm.q_bar());
            for (int g = 0; g < n; ++g) {  // stage use g: K_{g+1} and V_g, both read in the consumers' iteration g
                const int s = g % kStages;
                if (g >= kStages) mbar_wait(sm.empty(s), ((g / kStages) - 1) & 1);
                const bool k_next = g + 1 < n;
                mbar_expect_tx(sm.full(s), (k_next ? 2 : 1) * kKvTile<BN>);
                if (k_next) tma_load_2d(sm.k(s), &tm_k, h * kD, k_row + (g + 1) * BN, sm.full(s));
                tma_load_4d(sm.v(s), &tm_v, 0, 0, g * (BN / 32), bh, sm.full(s));
            }
        }
    } else {
        consumer<BN>(p, sm, wg, warp, lane, n, q_tile, h, b);
    }
#endif
}

// Writes 1 where this build holds the kernel's code for the running GPU (sm_90a), 0 elsewhere.
__global__ void compiled_in_kernel(int* out) { *out = FLUX2_FA8_DEVICE_CODE; }

// V [B, L, H, 128] BF16 (tokens v_row apart) -> vt8 [B, H, Lp / 32, 128, 32] E4M3 codes of V / descale (zeros past L,
// tokens in vt_pos order within a chunk), descale = amax / 448 from the n_partials amax partials (<= 256). The CTA at
// the origin also writes scales[kDescaleV], [kScaleO] and [kDescaleO] (O in E4M3 takes V's scale: |O| <= amax |V|).
// Grid (Lp / 64, H, B), 256 threads: a CTA takes 64 tokens of one head; each thread builds whole 4-byte words of
// vt8 (4 tokens) for 8 dims, staged through shared memory so that the stores are whole 32-byte rows.
__global__ void __launch_bounds__(256)
    v_transpose_kernel(const __nv_bfloat16* v, int64_t v_row, const float* partials, int n_partials, float* scales,
                       uint8_t* vt8, int L, int H, int Lp) {
    __shared__ uint32_t tile[kD][18];  // 16 words a dim, padded so that the two dim chunks of a warp miss each other
    const int tok0 = blockIdx.x * 64, h = blockIdx.y, b = blockIdx.z, tid = threadIdx.x;
    const float descale = e4m3_row_scale(block_max(tid < n_partials ? partials[tid] : 0.0f)), inv = 1.0f / descale;
    if (blockIdx.x == 0 && h == 0 && b == 0 && tid == 0) {
        scales[kDescaleV] = descale;
        scales[kScaleO] = inv;
        scales[kDescaleO] = descale;
    }
    const int w = tid & 15, c = tid >> 4;
    const int first = tok0 + 32 * (w >> 3) + 16 * ((w >> 2) & 1) + 2 * (w & 3);
    const int toks[4] = {first, first + 1, first + 8, first + 9};
    float f[4][8];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
        uint4 raw = make_uint4(0, 0, 0, 0);
        if (toks[r] < L) raw = *reinterpret_cast<const uint4*>(v + (int64_t(b) * L + toks[r]) * v_row + h * kD + c * 8);
        const __nv_bfloat162* bb = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const float2 x = __bfloat1622float2(bb[e]);
            f[r][2 * e] = x.x * inv;
            f[r][2 * e + 1] = x.y * inv;
        }
    }
#pragma unroll
    for (int e = 0; e < 8; ++e) {
        const uint32_t lo = float2_to_e4m3x2(f[0][e], f[1][e]);
        const uint32_t hi = float2_to_e4m3x2(f[2][e], f[3][e]);
        tile[c * 8 + e][w] = lo | (hi << 16);
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 8; ++k) {
        const int i = tid + 256 * k, d = i >> 4, ww = i & 15;
        const int64_t chunk = (int64_t(b) * H + h) * (Lp / 32) + tok0 / 32 + (ww >> 3);
        *reinterpret_cast<uint32_t*>(vt8 + (chunk * kD + d) * 32 + 4 * (ww & 7)) = tile[d][ww];
    }
}

}  // namespace flux2::cuda::fa8
