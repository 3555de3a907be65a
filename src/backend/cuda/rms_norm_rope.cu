// QK-RMSNorm + RoPE, one head vector per warp (or per Dh / 8 lanes, or whole tokens streamed, below):
// y = rope(x / sqrt(mean(x^2) + eps) * weight), where pair
// (2j, 2j+1) rotates as y0 = n0 cos[2j] - n1 sin[2j], y1 = n1 cos[2j+1] + n0 sin[2j+1] (diffusers' interleaved
// apply_rotary_emb; the tables repeat each angle twice). With an E4M3 destination (FP8 attention's q/k buffers) the
// BF16-rounded result is written as codes of the buffer's one scale, fixed beforehand from the gains (qk_fp8_descale).
#include <cmath>
#include <type_traits>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/row_stream.cuh"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kWarpsPerBlock = 8;

// Row r is head h = r % H of token t = r / H (t = b * L + l); its input starts at x + t * x_row + h * Dh and its
// output is token tok + l of y [B, Lo, H, Dh].
// Output goes to y (BF16), or when y8 is set to y8 as E4M3 codes of the scale *descale.
__global__ void rms_norm_rope_kernel(const bf16* x, int64_t x_row, const bf16* weight, const bf16* cos, const bf16* sin,
                                     bf16* y, uint8_t* y8, const float* descale, int64_t rows, int64_t L, int64_t H,
                                     int64_t Dh, int64_t Lo, int64_t tok, float eps) {
    const int64_t r = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    if (r >= rows) return;  // whole warps leave together: the shuffles below stay full-warp
    const int lane = threadIdx.x % 32;
    const int64_t h = r % H, t = r / H, l = t % L, b = t / L, pairs = Dh / 2;
    const auto* xr = reinterpret_cast<const __nv_bfloat162*>(x + t * x_row + h * Dh);

    float sq = 0.0f;
    for (int64_t p = lane; p < pairs; p += 32) {
        float2 v = __bfloat1622float2(xr[p]);
        sq += v.x * v.x + v.y * v.y;
    }
    const float inv = rsqrtf(warp_sum(sq) / static_cast<float>(Dh) + eps);

    const auto* w2 = reinterpret_cast<const __nv_bfloat162*>(weight);
    const auto* c2 = reinterpret_cast<const __nv_bfloat162*>(cos + l * Dh);
    const auto* s2 = reinterpret_cast<const __nv_bfloat162*>(sin + l * Dh);
    const int64_t out = ((b * Lo + tok + l) * H + h) * Dh;
    auto* yr = reinterpret_cast<__nv_bfloat162*>(y + out);
    auto* yr8 = reinterpret_cast<uint16_t*>(y8 + out);
    const float inv_scale = y8 ? 1.0f / *descale : 0.0f;  // as store_e4m3: the codes of v * (1 / descale)
    for (int64_t p = lane; p < pairs; p += 32) {
        const float2 v = __bfloat1622float2(xr[p]), g = __bfloat1622float2(w2[p]);
        const float2 c = __bfloat1622float2(c2[p]), s = __bfloat1622float2(s2[p]);
        const float n0 = v.x * inv * g.x, n1 = v.y * inv * g.y;
        const __nv_bfloat162 r = __floats2bfloat162_rn(n0 * c.x - n1 * s.x, n1 * c.y + n0 * s.y);
        if (y8) {
            const float2 rf = __bfloat1622float2(r);
            yr8[p] = float2_to_e4m3x2(rf.x * inv_scale, rf.y * inv_scale);
        } else {
            yr[p] = r;
        }
    }
}

// E4M3 codes' descale, as a value (the streamed kernel reads it once) or where it is read at the store (the vector
// kernel: read before its loads, it held the kernel at 52 registers instead of 32).
__device__ __forceinline__ float value_of(float d) { return d; }
__device__ __forceinline__ float value_of(const float* d) { return *d; }

// One head's 8 values v at position `at` of the output, normalized by inv (1 / rms), scaled by the gains g and
// rotated by the tables c, s: BF16 to y, or when y8 is set the BF16-rounded result as E4M3 codes of descale.
template <class Descale>
__device__ __forceinline__ void store_rotated(const float (&v)[8], float inv, const float (&g)[8], const float (&c)[8],
                                              const float (&s)[8], bf16* y, uint8_t* y8, Descale descale, int64_t at) {
    float out[8];
#pragma unroll
    for (int i = 0; i < 8; i += 2) {
        const float n0 = v[i] * inv * g[i], n1 = v[i + 1] * inv * g[i + 1];
        out[i] = n0 * c[i] - n1 * s[i];
        out[i + 1] = n1 * c[i + 1] + n0 * s[i + 1];
    }
    if (y8) {
#pragma unroll
        for (int i = 0; i < 8; ++i) out[i] = round_to_bf16(out[i]);
        store_e4m3<8>(y8 + at, out, value_of(descale));
    } else {
        store_bf16<8>(y + at, out);
    }
}

// The fast form for Dh % 8 == 0 with 16-byte aligned heads: G = Dh / 8 lanes per head, each holding 8 elements in
// registers (one 16-byte load of x, weight, cos and sin, one store), so x is read once and a warp covers 32 / G
// heads. Lanes past the last row still join the shuffles (with zeros) before they leave.
// The head, token and sample of a row are found in 32-bit arithmetic (the launcher checks that the rows fit): with
// 16 bytes of x a thread, software 64-bit divisions took issue slots the loads and stores needed (the dev step's
// calls ran at about 1.5 TB/s). Loading the gains and tables together with x, or two or four heads a thread, was
// slower: the registers they hold cost more occupancy than the overlap gives (PERFORMANCE.md).
template <int G>
__global__ void rms_norm_rope_vec_kernel(const bf16* x, int64_t x_row, const bf16* weight, const bf16* cos,
                                         const bf16* sin, bf16* y, uint8_t* y8, const float* descale, uint32_t rows,
                                         uint32_t L, uint32_t H, int64_t Dh, int64_t Lo, int64_t tok, float eps) {
    const uint32_t tid = blockIdx.x * blockDim.x + threadIdx.x, r = tid / G;
    const int lane = static_cast<int>(tid % G);
    const bool valid = r < rows;
    const uint32_t h = r % H, t = r / H, l = t % L, b = t / L;
    const int64_t e0 = int64_t(lane) * 8;
    float v[8] = {};
    if (valid) load_bf16<8>(x + int64_t(t) * x_row + int64_t(h) * Dh + e0, v);
    float sq = 0.0f;
#pragma unroll
    for (int i = 0; i < 8; ++i) sq += v[i] * v[i];
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, o);
    if (!valid) return;
    const float inv = rsqrtf(sq / static_cast<float>(Dh) + eps);
    float g[8], c[8], s[8];
    load_bf16<8>(weight + e0, g);
    load_bf16<8>(cos + int64_t(l) * Dh + e0, c);
    load_bf16<8>(sin + int64_t(l) * Dh + e0, s);
    store_rotated(v, inv, g, c, s, y, y8, descale, ((int64_t(b) * Lo + tok + l) * H + h) * Dh + e0);
}

// The streamed form, for whole tokens of FLUX.2's head counts: persistent CTAs take one token's H heads at a time
// through shared memory (RowStream: the next tokens' copies in flight while one is computed), thread t holding
// vectors t + j * blockDim.x, all at position (t % G) * 8 of their heads (blockDim.x is a multiple of G = Dh / 8),
// so that its gains and the token's cos / sin serve all V of them. The same arithmetic as the vector kernel above,
// whose loads (16 bytes a thread, then the reduction) left the memory idle between them: dev's q alone ran at
// 1.9 TB/s that way and at 2.4 streamed (PERFORMANCE.md).
constexpr int kRopeStreamThreads = 128;
constexpr int kRopeMaxVectors = 8;
// Two tokens a CTA, one on its way while the other is computed: faster than three or four (PERFORMANCE.md), which
// take shared memory from the L1 that serves the gains and tables.
using RopeStream = RowStream<2>;
constexpr size_t kRopeStreamSmem = RopeStream::smem_bytes(kRopeStreamThreads * kRopeMaxVectors * 16);

template <int G, int V>
__global__ void __launch_bounds__(kRopeStreamThreads)
    rms_norm_rope_stream_kernel(const bf16* x, int64_t x_row, const bf16* weight, const bf16* cos, const bf16* sin,
                                bf16* y, uint8_t* y8, const float* descale, int64_t tokens, int64_t L, int64_t H,
                                int64_t Dh, int64_t Lo, int64_t tok, float eps) {
    extern __shared__ __align__(16) unsigned char rope_smem[];
    RopeStream stream(rope_smem, x, x_row * int64_t(sizeof(bf16)), static_cast<uint32_t>(H * Dh * sizeof(bf16)),
                      tokens);
    stream.start();
    const int e0 = static_cast<int>(threadIdx.x % G) * 8;
    float g[8];
    load_bf16<8>(weight + e0, g);
    const float scale = y8 ? *descale : 1.0f;
    for (int64_t it = 0; stream.row(it) < tokens; ++it) {
        const int64_t t = stream.row(it), l = t % L, b = t / L;
        float c[8], s[8];
        load_bf16<8>(cos + l * Dh + e0, c);
        load_bf16<8>(sin + l * Dh + e0, s);
        const auto* heads = reinterpret_cast<const uint4*>(stream.wait(it));
        uint4 raw[V];
#pragma unroll
        for (int j = 0; j < V; ++j) raw[j] = heads[threadIdx.x + j * blockDim.x];
        stream.release(it);
        float sq[V];
#pragma unroll
        for (int j = 0; j < V; ++j) {
            float v[8];
            load_bf16<8>(reinterpret_cast<const bf16*>(&raw[j]), v);
            sq[j] = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) sq[j] += v[i] * v[i];
        }
#pragma unroll
        for (int o = G / 2; o > 0; o >>= 1)
#pragma unroll
            for (int j = 0; j < V; ++j) sq[j] += __shfl_xor_sync(0xffffffffu, sq[j], o);
#pragma unroll
        for (int j = 0; j < V; ++j) {
            float v[8];
            load_bf16<8>(reinterpret_cast<const bf16*>(&raw[j]), v);
            const int64_t h = (threadIdx.x + j * blockDim.x) / G;
            store_rotated(v, rsqrtf(sq[j] / static_cast<float>(Dh) + eps), g, c, s, y, y8, scale,
                          ((b * Lo + tok + l) * H + h) * Dh + e0);
        }
    }
}

// Streams whole tokens when their H * G vectors make V <= kRopeMaxVectors vectors of whole warps a thread
// (kRopeStreamThreads threads, or fewer for few heads); false otherwise.
template <int G>
bool launch_stream(const bf16* x, int64_t x_row, const bf16* weight, const bf16* cos, const bf16* sin, bf16* y,
                   uint8_t* y8, const float* descale, int64_t tokens, int64_t L, int64_t H, int64_t Dh, int64_t Lo,
                   int64_t tok, float eps, cudaStream_t stream) {
    const int64_t vectors = H * G;
    int threads = kRopeStreamThreads;
    while (threads > 32 && vectors % threads != 0) threads /= 2;
    if (vectors % threads != 0 || threads % G != 0 || vectors / threads > kRopeMaxVectors) return false;
    auto run = [&](auto v) {
        auto* kernel = &rms_norm_rope_stream_kernel<G, decltype(v)::value>;
        allow_dynamic_shared_memory(reinterpret_cast<const void*>(kernel), static_cast<int>(kRopeStreamSmem));
        const size_t smem = RopeStream::smem_bytes(static_cast<uint32_t>(H * Dh * sizeof(bf16)));
        const unsigned blocks = persistent_blocks(reinterpret_cast<const void*>(kernel), threads, smem, tokens);
        kernel<<<blocks, threads, smem, stream>>>(x, x_row, weight, cos, sin, y, y8, descale, tokens, L, H, Dh, Lo, tok,
                                                  eps);
        FLUX2_CUDA_CHECK_LAUNCH("rms_norm_rope_stream_kernel");
    };
    with_vector_count<kRopeMaxVectors>(vectors / threads, run);
    return true;
}

// The one scale of an FP8 q/k buffer: every element rms_norm_rope writes is at most sqrt(Dh) max|w| over the gains
// of the streams that write it (see Backend::attention_qk_buffer); 1% on top covers the BF16 rounding of the result
// and of the RoPE tables (cos^2 + sin^2 may exceed 1 by a few ulps), so no code saturates.
__global__ void qk_fp8_descale_kernel(const bf16* w0, const bf16* w1, int64_t Dh, float* descale) {
    float amax = 0.0f;
    for (int64_t j = threadIdx.x; j < Dh; j += blockDim.x) {
        amax = fmaxf(amax, fabsf(__bfloat162float(w0[j])));
        if (w1) amax = fmaxf(amax, fabsf(__bfloat162float(w1[j])));
    }
    amax = block_max(amax);
    if (threadIdx.x == 0) *descale = amax > 0.0f ? 1.01f * sqrtf(static_cast<float>(Dh)) * amax / kE4m3MaxF : 1.0f;
}

template <int G>
void launch_vec(const bf16* x, int64_t x_row, const bf16* weight, const bf16* cos, const bf16* sin, bf16* y,
                uint8_t* y8, const float* descale, int64_t rows, int64_t L, int64_t H, int64_t Dh, int64_t Lo,
                int64_t tok, float eps, cudaStream_t stream) {
    constexpr int kThreads = 256;
    check(rows * G <= (int64_t{1} << 32) - kThreads, "rms_norm_rope: ", rows, " heads of ", Dh,
          " are more than its 32-bit thread index covers");
    const unsigned blocks = static_cast<unsigned>((rows * G + kThreads - 1) / kThreads);
    rms_norm_rope_vec_kernel<G><<<blocks, kThreads, 0, stream>>>(x, x_row, weight, cos, sin, y, y8, descale,
                                                                 static_cast<uint32_t>(rows), static_cast<uint32_t>(L),
                                                                 static_cast<uint32_t>(H), Dh, Lo, tok, eps);
    FLUX2_CUDA_CHECK_LAUNCH("rms_norm_rope_vec_kernel");
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
}  // namespace

void launch_rms_norm_rope_strided(const bf16* x, int64_t x_row, const bf16* weight, const bf16* cos, const bf16* sin,
                                  bf16* y, uint8_t* y8, const float* descale, int64_t B, int64_t L, int64_t H,
                                  int64_t Dh, int64_t Lo, int64_t tok, float eps, cudaStream_t stream) {
    const int64_t rows = B * L * H;
    if (rows == 0 || Dh == 0) return;
    const bool out_aligned = y8 ? (Dh % 8 == 0 && reinterpret_cast<uintptr_t>(y8) % 8 == 0) : aligned16(y);
    if (Dh % 8 == 0 && x_row % 8 == 0 && aligned16(x) && aligned16(weight) && aligned16(cos) && aligned16(sin) &&
        out_aligned) {
        auto vec = [&](auto g) {
            constexpr int G = decltype(g)::value;
            // x_row % 8 == 0 and x 16-byte aligned: every token's heads are 16-byte aligned for the copy engine
            if (!launch_stream<G>(x, x_row, weight, cos, sin, y, y8, descale, B * L, L, H, Dh, Lo, tok, eps, stream))
                launch_vec<G>(x, x_row, weight, cos, sin, y, y8, descale, rows, L, H, Dh, Lo, tok, eps, stream);
        };
        switch (Dh / 8) {
            case 1:
                return vec(std::integral_constant<int, 1>{});
            case 2:
                return vec(std::integral_constant<int, 2>{});
            case 4:
                return vec(std::integral_constant<int, 4>{});
            case 8:
                return vec(std::integral_constant<int, 8>{});
            case 16:
                return vec(std::integral_constant<int, 16>{});
            case 32:
                return vec(std::integral_constant<int, 32>{});
            default:
                break;  // other head dims take the one-warp-per-head kernel below
        }
    }
    const unsigned blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
    rms_norm_rope_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(x, x_row, weight, cos, sin, y, y8, descale, rows,
                                                                     L, H, Dh, Lo, tok, eps);
    FLUX2_CUDA_CHECK_LAUNCH("rms_norm_rope_kernel");
}

void launch_qk_fp8_descale(const bf16* w0, const bf16* w1, int64_t Dh, float* descale, cudaStream_t stream) {
    qk_fp8_descale_kernel<<<1, 128, 0, stream>>>(w0, w1, Dh, descale);
    FLUX2_CUDA_CHECK_LAUNCH("qk_fp8_descale_kernel");
}

void launch_rms_norm_rope(const bf16* x, const bf16* weight, const bf16* cos, const bf16* sin, bf16* y, int64_t B,
                          int64_t L, int64_t H, int64_t Dh, float eps, cudaStream_t stream) {
    launch_rms_norm_rope_strided(x, H * Dh, weight, cos, sin, y, nullptr, nullptr, B, L, H, Dh, L, 0, eps, stream);
}

}  // namespace cuda

Tensor CudaBackend::rms_norm_rope(const Tensor& x, const Tensor& norm_weight, const Tensor& cos, const Tensor& sin,
                                  float eps) {
    FLUX2_PROFILE_OP("rms_norm_rope");
    const char* op = "rms_norm_rope";
    expect_device_bf16(x, op, "x");
    expect_device_bf16(norm_weight, op, "norm_weight");
    expect_device_bf16(cos, op, "cos");
    expect_device_bf16(sin, op, "sin");
    check(x.ndim() == 4, op, ": expected x [B, L, H, Dh], got ", shape_str(x.shape()));
    const int64_t L = x.dim(1), Dh = x.dim(3);
    check(Dh % 2 == 0, op, ": head dim ", Dh, " is odd");
    check(norm_weight.numel() == Dh, op, ": norm_weight has ", norm_weight.numel(), " elements, expected ", Dh);
    check(cos.shape() == Shape{L, Dh} && sin.shape() == Shape{L, Dh}, op, ": cos/sin must be [", L, ", ", Dh, "], got ",
          shape_str(cos.shape()), " / ", shape_str(sin.shape()));
    Tensor y = empty(x.shape(), DType::BF16);
    cuda::launch_rms_norm_rope(static_cast<const cuda::bf16*>(x.raw()),
                               static_cast<const cuda::bf16*>(norm_weight.raw()),
                               static_cast<const cuda::bf16*>(cos.raw()), static_cast<const cuda::bf16*>(sin.raw()),
                               static_cast<cuda::bf16*>(y.raw()), x.dim(0), L, x.dim(2), Dh, eps, stream());
    return y;
}

}  // namespace flux2
