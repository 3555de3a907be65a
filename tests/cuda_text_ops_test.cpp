// CUDA text-encoder ops: rotate-half RoPE and causal grouped-query attention with left padding, against fp64 CPU
// references.
#include <cmath>

#include "cuda_test_util.h"

namespace flux2::test {
namespace {

class CudaTextOps : public CudaTest {};

TEST_F(CudaTextOps, RopeHalfSharedAndPerSampleTables) {
    const int64_t B = 2, L = 5, H = 3, Dh = 16, half = Dh / 2;
    for (bool per_sample : {false, true}) {
        Tensor x = randn({B, L, H, Dh});
        const Shape table = per_sample ? Shape{B, L, Dh} : Shape{L, Dh};
        Tensor cos = randn(table, 0.7f), sin = randn(table, 0.7f);
        std::vector<double> ref(x.numel());
        for (int64_t r = 0; r < B * L * H; ++r) {
            const int64_t t = (per_sample ? r / H : (r / H) % L) * Dh;
            const float* v = x.f32() + r * Dh;
            for (int64_t j = 0; j < half; ++j) {
                ref[r * Dh + j] = double(v[j]) * cos.f32()[t + j] - double(v[j + half]) * sin.f32()[t + j];
                ref[r * Dh + j + half] =
                    double(v[j + half]) * cos.f32()[t + j + half] + double(v[j]) * sin.f32()[t + j + half];
            }
        }
        std::vector<float> got = down(be->rope_half(up(x), up(cos), up(sin)));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), 5e-3) << "per_sample " << per_sample;
    }
}

TEST_F(CudaTextOps, CausalGroupedAttentionWithPadding) {
    const int64_t B = 2, L = 37, H = 4, Hkv = 2, Dh = 64;
    Tensor q = randn({B, L, H, Dh}, 1.5f), k = randn({B, L, Hkv, Dh}, 1.5f), v = randn({B, L, Hkv, Dh});
    Tensor mask = Tensor::zeros({B, L});
    for (int64_t j = 0; j < L; ++j) {
        mask.f32()[j] = 1.0f;                      // sample 0: no padding
        mask.f32()[L + j] = j >= 9 ? 1.0f : 0.0f;  // sample 1: 9 left-padding positions
    }
    const double scale = 1.0 / std::sqrt(double(Dh));
    std::vector<double> ref(B * L * H * Dh, 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < L; ++i) {
                std::vector<double> p(L, 0.0);
                double mx = -INFINITY, sum = 0;
                const float* qi = q.f32() + ((b * L + i) * H + h) * Dh;
                for (int64_t j = 0; j <= i; ++j) {
                    if (mask.f32()[b * L + j] == 0.0f) continue;
                    const float* kj = k.f32() + ((b * L + j) * Hkv + h / (H / Hkv)) * Dh;
                    double s = 0;
                    for (int64_t d = 0; d < Dh; ++d) s += double(qi[d]) * kj[d];
                    p[j] = s * scale;
                    mx = std::max(mx, p[j]);
                }
                if (mx == -INFINITY) continue;  // fully masked: zeros
                for (int64_t j = 0; j <= i; ++j)
                    if (mask.f32()[b * L + j] != 0.0f)
                        sum += (p[j] = std::exp(p[j] - mx));
                    else
                        p[j] = 0;
                for (int64_t d = 0; d < Dh; ++d) {
                    double acc = 0;
                    for (int64_t j = 0; j <= i; ++j)
                        acc += p[j] * v.f32()[((b * L + j) * Hkv + h / (H / Hkv)) * Dh + d];
                    ref[((b * L + i) * H + h) * Dh + d] = acc / sum;
                }
            }
    std::vector<float> got = down(be->causal_attention(up(q), up(k), up(v), up(mask)));
    ASSERT_TRUE(all_finite(got));
    EXPECT_LE(rel_error(got, to_float(ref)), 5e-3);
    for (int64_t i = 0; i < 9 * H * Dh; ++i) ASSERT_EQ(got[B * L * H * Dh / 2 + i], 0.0f) << "padded query " << i;
}

}  // namespace
}  // namespace flux2::test
