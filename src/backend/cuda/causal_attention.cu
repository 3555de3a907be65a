// Causal grouped-query attention with a key padding mask (the text encoders, 512 tokens, once per prompt). cuDNN's
// fused SDPA runs it (causal_attention_cudnn.cpp) with the padding mask as an additive bias built here; the rows it
// cannot get right (queries with no visible key) are zeroed here after it. Shapes cuDNN refuses run on a simple
// kernel: one warp per query row walks its visible keys with an online softmax in fp32, each lane holding Dh / 32
// of the query, accumulator and value dimensions (about 0.75 ms a layer at 512 tokens and 32 heads, against tens
// of microseconds for cuDNN).
#include "backend/cuda/causal_attention_cudnn.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/op_shapes.h"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kWarpsPerBlock = 4;
constexpr int kMaxPerLane = 8;  // Dh <= 256

__global__ void causal_attention_kernel(const bf16* q, const bf16* k, const bf16* v, const bf16* key_mask, bf16* o,
                                        int64_t B, int64_t L, int64_t H, int64_t Hkv, int64_t Dh, float scale) {
    const int64_t row = int64_t(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;  // (b, i, h), h fastest
    if (row >= B * L * H) return;                                                 // whole warps leave together
    const int lane = threadIdx.x % 32;
    const int64_t h = row % H, i = (row / H) % L, b = row / (H * L), hk = h / (H / Hkv);
    const bf16* qr = q + row * Dh;
    float qv[kMaxPerLane], acc[kMaxPerLane];
#pragma unroll
    for (int t = 0; t < kMaxPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        qv[t] = d < Dh ? __bfloat162float(qr[d]) * scale : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = 0; j <= i; ++j) {
        if (__bfloat162float(key_mask[b * L + j]) == 0.0f) continue;  // same j for the whole warp
        const bf16* kr = k + ((b * L + j) * Hkv + hk) * Dh;
        const bf16* vr = v + ((b * L + j) * Hkv + hk) * Dh;
        float s = 0.0f;
#pragma unroll
        for (int t = 0; t < kMaxPerLane; ++t) {
            const int64_t d = lane + 32 * t;
            if (d < Dh) s += qv[t] * __bfloat162float(kr[d]);
        }
        s = warp_sum(s);
        const float m_new = fmaxf(m, s), correction = __expf(m - m_new), p = __expf(s - m_new);
        l = l * correction + p;
#pragma unroll
        for (int t = 0; t < kMaxPerLane; ++t) {
            const int64_t d = lane + 32 * t;
            if (d < Dh) acc[t] = acc[t] * correction + p * __bfloat162float(vr[d]);
        }
        m = m_new;
    }
    bf16* orow = o + ((b * L + i) * H + h) * Dh;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;  // no visible key: zeros
#pragma unroll
    for (int t = 0; t < kMaxPerLane; ++t) {
        const int64_t d = lane + 32 * t;
        if (d < Dh) orow[d] = __float2bfloat16_rn(acc[t] * inv);
    }
}
// The additive padding mask of cuDNN's SDPA: bias[b, i, j] = 0 for a real key j, a large negative number for a
// padding key (every query row alike; the causal part is cuDNN's own mask). Finite, so that a row whose keys are
// all masked stays finite (it is zeroed afterwards) instead of turning into NaN.
__global__ void key_padding_bias_kernel(const bf16* key_mask, bf16* bias, int64_t B, int64_t L, int64_t row) {
    const int64_t n = B * L * row;
    for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
        const int64_t j = e % row, b = e / (L * row);
        const bool masked = j < L && __bfloat162float(key_mask[b * L + j]) == 0.0f;
        bias[e] = __float2bfloat16_rn(masked ? -1.0e9f : 0.0f);
    }
}

// A query sees keys 0..i, so it has no visible key exactly when i precedes the batch's first real key: zero those
// rows of o [B, L, width]. One block per batch entry.
__global__ void zero_unattended_queries_kernel(const bf16* key_mask, bf16* o, int64_t L, int64_t width) {
    const int64_t b = blockIdx.x;
    __shared__ unsigned long long first;
    if (threadIdx.x == 0) first = static_cast<unsigned long long>(L);
    __syncthreads();
    for (int64_t j = threadIdx.x; j < L; j += blockDim.x)
        if (__bfloat162float(key_mask[b * L + j]) != 0.0f) atomicMin(&first, static_cast<unsigned long long>(j));
    __syncthreads();
    const bf16 zero = __float2bfloat16_rn(0.0f);
    const int64_t n = static_cast<int64_t>(first) * width;
    for (int64_t e = threadIdx.x; e < n; e += blockDim.x) o[b * L * width + e] = zero;
}
}  // namespace

void launch_key_padding_bias(const bf16* key_mask, bf16* bias, int64_t B, int64_t L, int64_t row, cudaStream_t stream) {
    if (B * L == 0) return;
    key_padding_bias_kernel<<<grid_for(B * L * row, 256), 256, 0, stream>>>(key_mask, bias, B, L, row);
    FLUX2_CUDA_CHECK_LAUNCH("key_padding_bias_kernel");
}

void launch_zero_unattended_queries(const bf16* key_mask, bf16* o, int64_t B, int64_t L, int64_t width,
                                    cudaStream_t stream) {
    if (B * L == 0) return;
    zero_unattended_queries_kernel<<<static_cast<unsigned>(B), 256, 0, stream>>>(key_mask, o, L, width);
    FLUX2_CUDA_CHECK_LAUNCH("zero_unattended_queries_kernel");
}

void launch_causal_attention(const bf16* q, const bf16* k, const bf16* v, const bf16* key_mask, bf16* o, int64_t B,
                             int64_t L, int64_t H, int64_t Hkv, int64_t Dh, cudaStream_t stream) {
    const int64_t rows = B * L * H;
    if (rows == 0 || Dh == 0) return;
    const unsigned blocks = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
    causal_attention_kernel<<<blocks, kWarpsPerBlock * 32, 0, stream>>>(q, k, v, key_mask, o, B, L, H, Hkv, Dh,
                                                                        rsqrtf(static_cast<float>(Dh)));
    FLUX2_CUDA_CHECK_LAUNCH("causal_attention_kernel");
}

}  // namespace cuda

Tensor CudaBackend::causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask) {
    FLUX2_PROFILE_OP("causal_attention");
    const char* op = "causal_attention";
    expect_device_bf16(q, op, "q");
    expect_device_bf16(k, op, "k");
    expect_device_bf16(v, op, "v");
    expect_device_bf16(key_mask, op, "key_mask");
    const CausalAttentionShape s = causal_attention_shape(q, k, v, key_mask);
    const int64_t B = s.B, L = s.L, H = s.H, Dh = s.Dh, Hkv = s.Hkv;
    Tensor out = empty({B, L, H * Dh}, DType::BF16);
    using cuda::bf16;
    if (!causal_sdpa_) causal_sdpa_ = std::make_unique<cuda::CudnnCausalSdpa>(stream_);
    const bool cudnn = causal_sdpa_->has_plan(B, L, H, Hkv, Dh);
    if (!recording()) count_path(cudnn ? "causal_attention->cudnn" : "causal_attention->kernel");
    if (cudnn) {
        const int64_t row = cuda::CudnnCausalSdpa::bias_row(L);
        Tensor bias = empty({B, L, row}, DType::BF16);
        const auto* mask = static_cast<const bf16*>(key_mask.raw());
        cuda::launch_key_padding_bias(mask, static_cast<bf16*>(bias.raw()), B, L, row, stream());
        causal_sdpa_->run(static_cast<const bf16*>(q.raw()), static_cast<const bf16*>(k.raw()),
                          static_cast<const bf16*>(v.raw()), static_cast<const bf16*>(bias.raw()),
                          static_cast<bf16*>(out.raw()), B, L, H, Hkv, Dh, row);
        cuda::launch_zero_unattended_queries(mask, static_cast<bf16*>(out.raw()), B, L, H * Dh, stream());
        return out;
    }
    check(Dh <= 32 * cuda::kMaxPerLane, "causal_attention: head dim ", Dh, " above ", 32 * cuda::kMaxPerLane);
    cuda::launch_causal_attention(static_cast<const cuda::bf16*>(q.raw()), static_cast<const cuda::bf16*>(k.raw()),
                                  static_cast<const cuda::bf16*>(v.raw()),
                                  static_cast<const cuda::bf16*>(key_mask.raw()), static_cast<cuda::bf16*>(out.raw()),
                                  B, L, H, Hkv, Dh, stream());
    return out;
}

}  // namespace flux2
