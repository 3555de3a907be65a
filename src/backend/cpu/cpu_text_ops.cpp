// CpuBackend text encoder ops: rotate-half RoPE and causal grouped-query attention with a key padding mask.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/op_shapes.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {

namespace {
constexpr int64_t kQueryBlock = 512;  // bounds the score buffer, as in CpuBackend::attention

// Copies head h of x [B, L, H, Dh] (batch b) into a contiguous [L, Dh] buffer.
void gather_head(const float* x, int64_t b, int64_t h, int64_t L, int64_t H, int64_t Dh, float* out) {
    for (int64_t l = 0; l < L; ++l) std::copy_n(x + ((b * L + l) * H + h) * Dh, Dh, out + l * Dh);
}
}  // namespace

Tensor CpuBackend::rope_half(const Tensor& x, const Tensor& cos, const Tensor& sin) {
    const RopeHalfShape s = rope_half_shape(x, cos, sin);
    const int64_t B = s.B, L = s.L, H = s.H, Dh = s.Dh;
    const bool per_sample = s.per_sample;
    const int64_t half = Dh / 2;
    Tensor y = Tensor::zeros(x.shape());
    const float *px = x.f32(), *pc = cos.f32(), *ps = sin.f32();
    float* py = y.f32();
    parallel_for(B * L * H, 64, [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t bl = r / H;  // b * L + l
            const int64_t t = (per_sample ? bl : bl % L) * Dh;
            const float *v = px + r * Dh, *c = pc + t, *s = ps + t;
            float* o = py + r * Dh;
            for (int64_t j = 0; j < half; ++j) {
                o[j] = v[j] * c[j] - v[j + half] * s[j];
                o[j + half] = v[j + half] * c[j + half] + v[j] * s[j + half];
            }
        }
    });
    return y;
}

Tensor CpuBackend::causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask) {
    const CausalAttentionShape s = causal_attention_shape(q, k, v, key_mask);
    const int64_t B = s.B, L = s.L, H = s.H, Dh = s.Dh, Hkv = s.Hkv;
    const int64_t group = H / Hkv;
    const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    Tensor out = Tensor::zeros({B, L, H * Dh});
    std::vector<float> qh(L * Dh), kh(L * Dh), vh(L * Dh), vt(Dh * L), oh(L * Dh);
    std::vector<float> scores(std::min(L, kQueryBlock) * L);
    const float* mask = key_mask.f32();
    for (int64_t b = 0; b < B; ++b) {
        const float* keep = mask + b * L;
        for (int64_t g = 0; g < Hkv; ++g) {
            gather_head(k.f32(), b, g, L, Hkv, Dh, kh.data());
            gather_head(v.f32(), b, g, L, Hkv, Dh, vh.data());
            for (int64_t l = 0; l < L; ++l)  // V^T so that P V is another A B^T product
                for (int64_t d = 0; d < Dh; ++d) vt[d * L + l] = vh[l * Dh + d];
            for (int64_t h = g * group; h < (g + 1) * group; ++h) {
                gather_head(q.f32(), b, h, L, H, Dh, qh.data());
                for (int64_t q0 = 0; q0 < L; q0 += kQueryBlock) {
                    const int64_t nq = std::min(kQueryBlock, L - q0);
                    cpu_gemm_nt(qh.data() + q0 * Dh, kh.data(), scores.data(), nq, L, Dh);
                    for (int64_t i = 0; i < nq; ++i) {
                        float* row = scores.data() + i * L;
                        const int64_t last = q0 + i;  // causal: keys 0..last
                        float mx = -INFINITY;
                        for (int64_t j = 0; j <= last; ++j)
                            if (keep[j] != 0.0f) mx = std::max(mx, row[j] * scale);
                        if (mx == -INFINITY) {  // fully masked query row: zeros (see backend.h)
                            std::fill_n(row, L, 0.0f);
                            continue;
                        }
                        double sum = 0;
                        for (int64_t j = 0; j < L; ++j) {
                            row[j] = (j <= last && keep[j] != 0.0f) ? std::exp(row[j] * scale - mx) : 0.0f;
                            sum += row[j];
                        }
                        const float inv = static_cast<float>(1.0 / sum);
                        for (int64_t j = 0; j <= last; ++j) row[j] *= inv;
                    }
                    cpu_gemm_nt(scores.data(), vt.data(), oh.data() + q0 * Dh, nq, Dh, L);
                }
                float* po = out.f32();
                for (int64_t l = 0; l < L; ++l) std::copy_n(oh.data() + l * Dh, Dh, po + (b * L + l) * H * Dh + h * Dh);
            }
        }
    }
    return out;
}

}  // namespace flux2
