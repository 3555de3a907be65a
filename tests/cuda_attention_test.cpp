// CUDA attention (cuDNN SDPA) against an fp64 softmax(Q K^T / sqrt(Dh)) V on the CPU, including sequence lengths
// that are not multiples of any tile size.
#include <cmath>

#include "cuda_test_util.h"

namespace flux2::test {
namespace {

constexpr double kTol = 1e-2;  // BF16 inputs/outputs, BF16 probabilities inside the fused kernel

class CudaAttention : public CudaTest {};

std::vector<float> attention_ref(const Tensor& q, const Tensor& k, const Tensor& v) {
    const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), Dh = q.dim(3);
    const double scale = 1.0 / std::sqrt(double(Dh));
    std::vector<float> out(q.numel());
    std::vector<double> p(L);
    auto at = [&](const Tensor& t, int64_t b, int64_t l, int64_t h) { return t.f32() + ((b * L + l) * H + h) * Dh; };
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < L; ++i) {
                const float* qi = at(q, b, i, h);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < L; ++j) {
                    const float* kj = at(k, b, j, h);
                    double s = 0;
                    for (int64_t d = 0; d < Dh; ++d) s += double(qi[d]) * kj[d];
                    p[j] = s * scale;
                    mx = std::max(mx, p[j]);
                }
                for (int64_t j = 0; j < L; ++j) sum += (p[j] = std::exp(p[j] - mx));
                for (int64_t d = 0; d < Dh; ++d) {
                    double acc = 0;
                    for (int64_t j = 0; j < L; ++j) acc += p[j] * at(v, b, j, h)[d];
                    out[((b * L + i) * H + h) * Dh + d] = static_cast<float>(acc / sum);
                }
            }
    return out;
}

TEST_F(CudaAttention, MatchesSoftmaxReference) {
    struct Case {
        int64_t B, L, H, Dh;
    };
    for (Case c : {Case{1, 24, 2, 32}, Case{2, 21, 4, 32}, Case{1, 333, 3, 128}, Case{2, 130, 2, 64}}) {
        // Scaled so that the softmax is neither flat nor one-hot.
        Tensor q = randn({c.B, c.L, c.H, c.Dh}, 1.5f), k = randn({c.B, c.L, c.H, c.Dh}, 1.5f);
        Tensor v = randn({c.B, c.L, c.H, c.Dh});
        Tensor o = be->attention(up(q), up(k), up(v));
        ASSERT_EQ(o.shape(), (Shape{c.B, c.L, c.H * c.Dh}));
        std::vector<float> got = down(o);
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, attention_ref(q, k, v)), kTol) << c.B << "x" << c.L << "x" << c.H << "x" << c.Dh;
    }
    EXPECT_THROW(be->attention(up(randn({1, 4, 2, 8})), up(randn({1, 5, 2, 8})), up(randn({1, 4, 2, 8}))), Error);
}

// Head dims beyond cuDNN SDPA's 256 (the FLUX.2 VAE's mid-block attention has one head of 512) take the cuBLAS +
// softmax path.
TEST_F(CudaAttention, WideHeadsMatchSoftmaxReference) {
    struct Case {
        int64_t B, L, H, Dh;
    };
    for (Case c : {Case{1, 77, 1, 512}, Case{2, 40, 2, 320}, Case{1, 300, 1, 512}}) {
        Tensor q = randn({c.B, c.L, c.H, c.Dh}, 0.3f), k = randn({c.B, c.L, c.H, c.Dh}, 0.3f);
        Tensor v = randn({c.B, c.L, c.H, c.Dh});
        std::vector<float> got = down(be->attention(up(q), up(k), up(v)));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, attention_ref(q, k, v)), kTol) << c.B << "x" << c.L << "x" << c.H << "x" << c.Dh;
    }
}

}  // namespace
}  // namespace flux2::test
