// CUDA VAE ops (conv2d, group_norm, pad2d, nearest upsampling, bias add, transpose) against fp64 CPU references.
#include <cmath>
#include <cstdlib>
#include <iostream>

#include "cuda_test_util.h"

namespace flux2::test {
namespace {

constexpr double kTol = 5e-3;

class CudaImageOps : public CudaTest {};

// Every path of conv2d (FLUX2_CONV forces one; the default takes cuDNN where it has an engine): a forced cuDNN
// layout may lack an engine for a shape (then it says so), but whatever runs must be right.
TEST_F(CudaImageOps, Conv2d) {
    struct Unset {
        ~Unset() { unsetenv("FLUX2_CONV"); }
    } unset_at_exit;  // also when an assertion ends the test early
    for (const char* path : {"", "cudnn-nchw", "cudnn-nhwc", "im2col"}) {
        if (*path) setenv("FLUX2_CONV", path, 1);
        struct Case {
            int64_t B, cin, H, W, cout, k;
            int stride, padding;
        };
        // 3x3 "same", the VAE's stride-2 downsampler (after pad2d), 1x1, and the 3-channel image input.
        for (Case c : {Case{2, 8, 9, 7, 16, 3, 1, 1}, Case{1, 16, 10, 12, 8, 3, 2, 0}, Case{1, 24, 5, 6, 40, 1, 1, 0},
                       Case{1, 3, 16, 16, 32, 3, 1, 1}}) {
            Tensor x = randn({c.B, c.cin, c.H, c.W}), w = randn({c.cout, c.cin, c.k, c.k}, 0.2f);
            Tensor b = randn({c.cout}, 0.5f);
            const int64_t Ho = (c.H + 2 * c.padding - c.k) / c.stride + 1,
                          Wo = (c.W + 2 * c.padding - c.k) / c.stride + 1;
            std::vector<double> ref(c.B * c.cout * Ho * Wo);
            for (int64_t n = 0; n < c.B; ++n)
                for (int64_t o = 0; o < c.cout; ++o)
                    for (int64_t y = 0; y < Ho; ++y)
                        for (int64_t xo = 0; xo < Wo; ++xo) {
                            double acc = b.f32()[o];
                            for (int64_t i = 0; i < c.cin; ++i)
                                for (int64_t ky = 0; ky < c.k; ++ky)
                                    for (int64_t kx = 0; kx < c.k; ++kx) {
                                        const int64_t iy = y * c.stride - c.padding + ky,
                                                      ix = xo * c.stride - c.padding + kx;
                                        if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                                        acc += double(x.f32()[((n * c.cin + i) * c.H + iy) * c.W + ix]) *
                                               w.f32()[((o * c.cin + i) * c.k + ky) * c.k + kx];
                                    }
                            ref[((n * c.cout + o) * Ho + y) * Wo + xo] = acc;
                        }
            const std::string what = std::string(*path ? path : "default") + ": cin " + std::to_string(c.cin) + " k " +
                                     std::to_string(c.k) + " stride " + std::to_string(c.stride);
            Tensor got_t;
            try {
                got_t = be->conv2d(up(x), up(w), up(b), c.stride, c.padding);
            } catch (const std::exception& e) {
                EXPECT_TRUE(*path && std::string(e.what()).find("no cuDNN engine") != std::string::npos) << e.what();
                std::cout << what << ": " << e.what() << "\n";
                continue;
            }
            ASSERT_EQ(got_t.shape(), (Shape{c.B, c.cout, Ho, Wo}));
            std::vector<float> got = down(got_t);
            ASSERT_TRUE(all_finite(got));
            EXPECT_LE(rel_error(got, to_float(ref)), kTol) << what;
        }
        unsetenv("FLUX2_CONV");
    }
}

// release_cached_memory gives the convolutions' workspace back (the VAE's at 1024² may be a GB, held otherwise
// through the next request's steps); the next convolution allocates it again and gives the same output.
TEST_F(CudaImageOps, Conv2dAfterItsWorkspaceWentBack) {
    Tensor x = up(randn({1, 256, 128, 128})), w = up(randn({256, 256, 3, 3}, 0.05f)), b = up(randn({256}, 0.5f));
    const std::vector<float> first = down(be->conv2d(x, w, b, 1, 1));
    be->synchronize();
    const int64_t held = be->memory_in_use_bytes();
    be->release_cached_memory();
    EXPECT_LE(be->memory_in_use_bytes(), held);
    EXPECT_EQ(down(be->conv2d(x, w, b, 1, 1)), first);
    EXPECT_EQ(down(be->conv2d(x, w, b, 1, 1)), first);
}

TEST_F(CudaImageOps, GroupNormWithAndWithoutSilu) {
    for (bool silu : {false, true}) {
        const int64_t B = 2, C = 12, H = 5, W = 7, G = 3, S = H * W, cg = C / G;
        Tensor x = randn({B, C, H, W}, 2.0f, 0.5f), w = randn({C}, 0.3f, 1.0f), b = randn({C}, 0.3f);
        std::vector<double> ref(x.numel());
        for (int64_t g = 0; g < B * G; ++g) {
            const float* p = x.f32() + g * cg * S;
            double mean = 0, var = 0;
            for (int64_t i = 0; i < cg * S; ++i) mean += p[i];
            mean /= cg * S;
            for (int64_t i = 0; i < cg * S; ++i) var += (p[i] - mean) * (p[i] - mean);
            var /= cg * S;
            for (int64_t i = 0; i < cg * S; ++i) {
                const int64_t c = (g % G) * cg + i / S;
                double v = (p[i] - mean) / std::sqrt(var + 1e-6) * w.f32()[c] + b.f32()[c];
                ref[g * cg * S + i] = silu ? v / (1 + std::exp(-v)) : v;
            }
        }
        std::vector<float> got = down(be->group_norm(up(x), G, up(w), up(b), 1e-6f, silu));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), kTol) << "silu " << silu;
    }
}

TEST_F(CudaImageOps, LayoutOpsAreExact) {
    Tensor x = randn({2, 3, 5, 7});
    std::vector<float> pad = down(be->pad2d(up(x), 0, 1, 2, 1));  // left, right, top, bottom
    ASSERT_EQ(pad.size(), size_t(2 * 3 * 8 * 8));
    for (int64_t p = 0; p < 6; ++p)
        for (int64_t r = 0; r < 8; ++r)
            for (int64_t c = 0; c < 8; ++c) {
                const bool inside = r >= 2 && r < 7 && c < 7;
                EXPECT_EQ(pad[(p * 8 + r) * 8 + c], inside ? x.f32()[(p * 5 + r - 2) * 7 + c] : 0.0f);
            }

    std::vector<float> upx = down(be->upsample_nearest2x(up(x)));
    for (int64_t p = 0; p < 6; ++p)
        for (int64_t r = 0; r < 10; ++r)
            for (int64_t c = 0; c < 14; ++c)
                EXPECT_EQ(upx[(p * 10 + r) * 14 + c], x.f32()[(p * 5 + r / 2) * 7 + c / 2]);

    Tensor t = be->transpose_last2(up(x));
    ASSERT_EQ(t.shape(), (Shape{2, 3, 7, 5}));
    std::vector<float> tv = down(t);
    for (int64_t p = 0; p < 6; ++p)
        for (int64_t i = 0; i < 5; ++i)
            for (int64_t j = 0; j < 7; ++j) EXPECT_EQ(tv[(p * 7 + j) * 5 + i], x.f32()[(p * 5 + i) * 7 + j]);
    Tensor big = randn({70, 45});  // several tiles, ragged edges
    std::vector<float> bt = down(be->transpose_last2(up(big)));
    for (int64_t i = 0; i < 70; ++i)
        for (int64_t j = 0; j < 45; ++j) ASSERT_EQ(bt[j * 70 + i], big.f32()[i * 45 + j]);
}

TEST_F(CudaImageOps, AddBias) {
    for (int64_t N : {64, 13}) {
        Tensor x = randn({3, 4, N}), b = randn({N});
        std::vector<double> ref(x.numel());
        for (int64_t i = 0; i < x.numel(); ++i) ref[i] = double(x.f32()[i]) + b.f32()[i % N];
        EXPECT_LE(rel_error(down(be->add_bias(up(x), up(b))), to_float(ref)), kTol) << N;
    }
}

}  // namespace
}  // namespace flux2::test
