// CUDA LayerNorm+modulation, RMSNorm and QK-RMSNorm+RoPE against fp64 CPU references.
#include <cmath>

#include "cuda_test_util.h"

namespace flux2::test {
namespace {

constexpr double kTol = 5e-3;

class CudaNorm : public CudaTest {};

TEST_F(CudaNorm, LayerNormModulate) {
    // The widths of FLUX.2 dev (six vectors of 8 a thread held in registers), klein-4B (three) and klein-9B (four),
    // 8192 (eight), 2064 (a third vector on some threads only), a tiny-model width (one), 8208 (too wide for
    // registers: the row re-read for every pass) and an odd width (scalar path); offset inputs test the variance pass.
    for (Shape s : {Shape{1, 3, 6144}, Shape{2, 3, 3072}, Shape{1, 2, 4096}, Shape{1, 2, 8192}, Shape{2, 2, 2064},
                    Shape{2, 7, 64}, Shape{1, 2, 8208}, Shape{2, 5, 37}}) {
        const int64_t B = s[0], L = s[1], D = s[2];
        Tensor x = randn(s, 2.0f, 0.7f), shift = randn({B, D}, 0.3f), scale = randn({B, D}, 0.3f);
        const float eps = 1e-6f;
        std::vector<double> ref(x.numel());
        for (int64_t r = 0; r < B * L; ++r) {
            const float* row = x.f32() + r * D;
            double mean = 0, var = 0;
            for (int64_t i = 0; i < D; ++i) mean += row[i];
            mean /= D;
            for (int64_t i = 0; i < D; ++i) var += (row[i] - mean) * (row[i] - mean);
            var /= D;
            const int64_t b = r / L;
            for (int64_t i = 0; i < D; ++i)
                ref[r * D + i] =
                    (row[i] - mean) / std::sqrt(var + eps) * (1.0 + scale.f32()[b * D + i]) + shift.f32()[b * D + i];
        }
        std::vector<float> got = down(be->layer_norm_modulate(up(x), up(shift), up(scale), eps));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), kTol) << shape_str(s);
    }
    EXPECT_THROW(be->layer_norm_modulate(up(randn({1, 2, 8})), up(randn({1, 4})), up(randn({1, 8})), 1e-6f), Error);
}

TEST_F(CudaNorm, RmsNorm) {
    for (Shape s : {Shape{4, 3072}, Shape{3, 2, 40}, Shape{5, 19}}) {
        const int64_t D = s.back(), rows = shape_numel(s) / D;
        Tensor x = randn(s, 1.5f), w = randn({D}, 0.2f, 1.0f);
        const float eps = 1e-6f;
        std::vector<double> ref(x.numel());
        for (int64_t r = 0; r < rows; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < D; ++i) ss += double(x.f32()[r * D + i]) * x.f32()[r * D + i];
            const double inv = 1.0 / std::sqrt(ss / D + eps);
            for (int64_t i = 0; i < D; ++i) ref[r * D + i] = x.f32()[r * D + i] * inv * w.f32()[i];
        }
        std::vector<float> got = down(be->rms_norm(up(x), up(w), eps));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), kTol) << shape_str(s);
    }
}

TEST_F(CudaNorm, RmsNormRope) {
    struct Case {
        int64_t B, L, H, Dh;
    };
    // FLUX.2 heads (Dh 128), tiny-model heads (Dh 32), and Dh 100 (pairs not a multiple of the warp width). The
    // head counts of dev (48), klein-4B (24) and klein-9B (32), and 4 heads of 64, take whole tokens through the
    // streamed kernel (6, 3, 4 and 1 vectors a thread); 4500 tokens are more than its persistent grid holds at
    // once, so its CTAs stream several tokens each and their buffers wrap around.
    for (Case c : {Case{1, 33, 3, 128}, Case{2, 7, 2, 32}, Case{1, 5, 1, 100}, Case{1, 37, 48, 128},
                   Case{2, 9, 24, 128}, Case{1, 5, 32, 128}, Case{2, 3, 4, 64}, Case{1, 4500, 24, 128}}) {
        Tensor x = randn({c.B, c.L, c.H, c.Dh}, 2.0f), w = randn({c.Dh}, 0.2f, 1.0f);
        Tensor cos = Tensor::zeros({c.L, c.Dh}), sin = Tensor::zeros({c.L, c.Dh});
        std::uniform_real_distribution<float> angle(-3.14f, 3.14f);
        for (int64_t i = 0; i < c.L * c.Dh; i += 2) {
            const float a = angle(rng);
            cos.f32()[i] = cos.f32()[i + 1] = round_bf16(std::cos(a));
            sin.f32()[i] = sin.f32()[i + 1] = round_bf16(std::sin(a));
        }
        const float eps = 1e-6f;
        std::vector<double> ref(x.numel());
        for (int64_t r = 0; r < c.B * c.L * c.H; ++r) {
            const float* v = x.f32() + r * c.Dh;
            const int64_t l = (r / c.H) % c.L;
            double ss = 0;
            for (int64_t i = 0; i < c.Dh; ++i) ss += double(v[i]) * v[i];
            const double inv = 1.0 / std::sqrt(ss / c.Dh + eps);
            const float *pc = cos.f32() + l * c.Dh, *ps = sin.f32() + l * c.Dh;
            for (int64_t j = 0; j < c.Dh; j += 2) {
                const double n0 = v[j] * inv * w.f32()[j], n1 = v[j + 1] * inv * w.f32()[j + 1];
                ref[r * c.Dh + j] = n0 * pc[j] - n1 * ps[j];
                ref[r * c.Dh + j + 1] = n1 * pc[j + 1] + n0 * ps[j + 1];
            }
        }
        std::vector<float> got = down(be->rms_norm_rope(up(x), up(w), up(cos), up(sin), eps));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), kTol) << c.B << "x" << c.L << "x" << c.H << "x" << c.Dh;
    }
}

}  // namespace
}  // namespace flux2::test
