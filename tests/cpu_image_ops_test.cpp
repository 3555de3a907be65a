// The CPU backend's image ops (VAE) against naive loops written from their definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/backend.h"
#include "core/error.h"
#include "test_util.h"

namespace flux2 {
namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(shape_numel(shape));
    for (float& x : v) x = normal(rng);
    return Tensor::from_f32(shape, v);
}

std::vector<float> naive_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad) {
    const int64_t B = x.dim(0), Ci = x.dim(1), H = x.dim(2), W = x.dim(3);
    const int64_t Co = w.dim(0), kh = w.dim(2), kw = w.dim(3);
    const int64_t Ho = (H + 2 * pad - kh) / stride + 1, Wo = (W + 2 * pad - kw) / stride + 1;
    std::vector<float> out(B * Co * Ho * Wo);
    for (int64_t n = 0; n < B; ++n)
        for (int64_t co = 0; co < Co; ++co)
            for (int64_t oy = 0; oy < Ho; ++oy)
                for (int64_t ox = 0; ox < Wo; ++ox) {
                    double acc = b.f32()[co];
                    for (int64_t ci = 0; ci < Ci; ++ci)
                        for (int64_t ky = 0; ky < kh; ++ky)
                            for (int64_t kx = 0; kx < kw; ++kx) {
                                const int64_t iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += double(x.f32()[((n * Ci + ci) * H + iy) * W + ix]) *
                                       w.f32()[((co * Ci + ci) * kh + ky) * kw + kx];
                            }
                    out[((n * Co + co) * Ho + oy) * Wo + ox] = static_cast<float>(acc);
                }
    return out;
}

class CpuImageOps : public ::testing::Test {
protected:
    std::unique_ptr<Backend> be = make_backend(BackendOptions{});
};

TEST_F(CpuImageOps, Conv2dMatchesDirectLoops) {
    struct Case {
        Shape x, w;
        int stride, pad;
    };
    for (const Case& c : {Case{{2, 3, 9, 7}, {5, 3, 3, 3}, 1, 1}, Case{{1, 4, 10, 8}, {6, 4, 3, 3}, 2, 0},
                          Case{{1, 8, 5, 6}, {3, 8, 1, 1}, 1, 0}, Case{{2, 2, 6, 11}, {4, 2, 3, 3}, 2, 1}}) {
        const Tensor x = random_tensor(c.x, 1), w = random_tensor(c.w, 2), b = random_tensor({c.w[0]}, 3);
        const Tensor y = be->conv2d(x, w, b, c.stride, c.pad);
        const auto ref = naive_conv2d(x, w, b, c.stride, c.pad);
        EXPECT_LT(test::rel_error(y.to_vector(), ref), 1e-6) << shape_str(c.x) << " * " << shape_str(c.w);
    }
    EXPECT_THROW(
        be->conv2d(random_tensor({1, 3, 4, 4}, 1), random_tensor({2, 4, 3, 3}, 2), random_tensor({2}, 3), 1, 1), Error);
}

TEST_F(CpuImageOps, Conv2dBandsCoverLargeImages) {
    // Wide enough that the im2col scratch is split into several bands of output rows.
    const Tensor x = random_tensor({1, 64, 300, 300}, 4), w = random_tensor({2, 64, 3, 3}, 5),
                 b = random_tensor({2}, 6);
    const Tensor y = be->conv2d(x, w, b, 1, 1);
    const auto ref = naive_conv2d(x, w, b, 1, 1);
    EXPECT_LT(test::rel_error(y.to_vector(), ref), 1e-6);
}

TEST_F(CpuImageOps, GroupNormWithAffineAndSilu) {
    const Tensor x = random_tensor({2, 6, 3, 4}, 7), g = random_tensor({6}, 8), b = random_tensor({6}, 9);
    for (bool silu : {false, true}) {
        const Tensor y = be->group_norm(x, 3, g, b, 1e-6f, silu);
        std::vector<float> ref(x.numel());
        for (int n = 0; n < 2; ++n)
            for (int grp = 0; grp < 3; ++grp) {
                const float* p = x.f32() + (n * 6 + grp * 2) * 12;
                double mean = 0, var = 0;
                for (int i = 0; i < 24; ++i) mean += p[i];
                mean /= 24;
                for (int i = 0; i < 24; ++i) var += (p[i] - mean) * (p[i] - mean);
                var /= 24;
                for (int i = 0; i < 24; ++i) {
                    const int c = grp * 2 + i / 12;
                    double v = (p[i] - mean) / std::sqrt(var + 1e-6) * g.f32()[c] + b.f32()[c];
                    if (silu) v = v / (1 + std::exp(-v));
                    ref[(n * 6 + grp * 2) * 12 + i] = static_cast<float>(v);
                }
            }
        EXPECT_LT(test::rel_error(y.to_vector(), ref), 1e-6) << silu;
    }
    EXPECT_THROW(be->group_norm(x, 4, g, b, 1e-6f, false), Error);
}

TEST_F(CpuImageOps, UpsamplePadTransposeBias) {
    const Tensor x = Tensor::from_f32({1, 1, 2, 2}, {1, 2, 3, 4});
    EXPECT_EQ(be->upsample_nearest2x(x).to_vector(),
              (std::vector<float>{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
    const Tensor p = be->pad2d(x, 0, 1, 2, 0);
    EXPECT_EQ(p.shape(), (Shape{1, 1, 4, 3}));
    EXPECT_EQ(p.to_vector(), (std::vector<float>{0, 0, 0, 0, 0, 0, 1, 2, 0, 3, 4, 0}));
    const Tensor m = random_tensor({2, 37, 45}, 10);
    const Tensor t = be->transpose_last2(m);
    ASSERT_EQ(t.shape(), (Shape{2, 45, 37}));
    for (int o = 0; o < 2; ++o)
        for (int i = 0; i < 37; ++i)
            for (int j = 0; j < 45; ++j) ASSERT_EQ(t.f32()[(o * 45 + j) * 37 + i], m.f32()[(o * 37 + i) * 45 + j]);
    EXPECT_EQ(be->transpose_last2(t).to_vector(), m.to_vector());
    const Tensor biased = be->add_bias(Tensor::from_f32({2, 2}, {1, 2, 3, 4}), Tensor::from_f32({2}, {10, 20}));
    EXPECT_EQ(biased.to_vector(), (std::vector<float>{11, 22, 13, 24}));
}

}  // namespace
}  // namespace flux2
