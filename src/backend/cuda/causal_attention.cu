// Causal grouped-query attention with a key padding mask (the text encoders; 512 tokens, run once per prompt, so a
// simple kernel suffices): one warp per query row walks its visible keys with an online softmax in fp32. Each lane
// holds Dh / 32 of the query, accumulator and value dimensions.
#include "backend/op_shapes.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
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
}  // namespace

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
    check(Dh <= 32 * cuda::kMaxPerLane, "causal_attention: head dim ", Dh, " above ", 32 * cuda::kMaxPerLane);
    Tensor out = empty({B, L, H * Dh}, DType::BF16);
    cuda::launch_causal_attention(static_cast<const cuda::bf16*>(q.raw()), static_cast<const cuda::bf16*>(k.raw()),
                                  static_cast<const cuda::bf16*>(v.raw()),
                                  static_cast<const cuda::bf16*>(key_mask.raw()), static_cast<cuda::bf16*>(out.raw()),
                                  B, L, H, Hkv, Dh, stream());
    return out;
}

}  // namespace flux2
