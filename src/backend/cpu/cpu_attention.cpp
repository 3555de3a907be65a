// CpuBackend::attention: exact softmax(Q K^T / sqrt(Dh)) V per (batch, head), in query blocks so the score
// matrix stays bounded (4608 tokens would otherwise need 85 MB per head).
#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace flux2 {

namespace {
constexpr int64_t kQueryBlock = 512;

// Copies head h of x [B, L, H, Dh] (batch b) into a contiguous [L, Dh] buffer.
void gather_head(const float* x, int64_t b, int64_t h, int64_t L, int64_t H, int64_t Dh, float* out) {
    for (int64_t l = 0; l < L; ++l) std::copy_n(x + ((b * L + l) * H + h) * Dh, Dh, out + l * Dh);
}
}  // namespace

Tensor CpuBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v) {
    check(q.ndim() == 4 && q.shape() == k.shape() && q.shape() == v.shape(),
          "attention: q, k, v must share one [B, L, H, Dh] shape, got ", shape_str(q.shape()), ", ",
          shape_str(k.shape()), ", ", shape_str(v.shape()));
    const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), Dh = q.dim(3);
    const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
    Tensor out = Tensor::zeros({B, L, H * Dh});
    std::vector<float> qh(L * Dh), kh(L * Dh), vt(Dh * L), scores(std::min(L, kQueryBlock) * L), oh(L * Dh);
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t h = 0; h < H; ++h) {
            gather_head(q.f32(), b, h, L, H, Dh, qh.data());
            gather_head(k.f32(), b, h, L, H, Dh, kh.data());
            gather_head(v.f32(), b, h, L, H, Dh, oh.data());
            for (int64_t l = 0; l < L; ++l)  // V^T so that P V is another A B^T product
                for (int64_t d = 0; d < Dh; ++d) vt[d * L + l] = oh[l * Dh + d];
            for (int64_t q0 = 0; q0 < L; q0 += kQueryBlock) {
                const int64_t nq = std::min(kQueryBlock, L - q0);
                cpu_gemm_nt(qh.data() + q0 * Dh, kh.data(), scores.data(), nq, L, Dh);
                for (int64_t i = 0; i < nq; ++i) {
                    float* row = scores.data() + i * L;
                    float mx = -INFINITY;
                    for (int64_t j = 0; j < L; ++j) mx = std::max(mx, row[j] * scale);
                    double sum = 0;
                    for (int64_t j = 0; j < L; ++j) {
                        row[j] = std::exp(row[j] * scale - mx);
                        sum += row[j];
                    }
                    const float inv = static_cast<float>(1.0 / sum);
                    for (int64_t j = 0; j < L; ++j) row[j] *= inv;
                }
                cpu_gemm_nt(scores.data(), vt.data(), qh.data() + q0 * Dh, nq, Dh, L);  // qh reused as output
            }
            float* po = out.f32();
            for (int64_t l = 0; l < L; ++l) std::copy_n(qh.data() + l * Dh, Dh, po + (b * L + l) * H * Dh + h * Dh);
        }
    }
    return out;
}

}  // namespace flux2
