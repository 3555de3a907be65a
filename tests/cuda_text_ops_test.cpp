// CUDA text-encoder ops: rotate-half RoPE and causal grouped-query attention with left and right padding (cuDNN's
// SDPA and the fallback kernel), against fp64 CPU references.
#include <cmath>
#include <string>

#include "cuda_test_util.h"

namespace flux2::test {
namespace {

class CudaTextOps : public CudaTest {
protected:
    std::string check_causal_attention(int64_t L, int64_t H, int64_t Hkv, int64_t Dh);
};

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

// Causal GQA with sample 0 unpadded, sample 1 padded on the left (Mistral: its first queries see no real key and
// must come out as zeros), sample 2 padded on the right (Qwen3), sample 3 all padding; against an fp64 reference.
// Returns the backend's path summary.
std::string CudaTextOps::check_causal_attention(int64_t L, int64_t H, int64_t Hkv, int64_t Dh) {
    const int64_t B = 4, left = L / 4, right = L / 3;
    Tensor q = randn({B, L, H, Dh}, 1.5f), k = randn({B, L, Hkv, Dh}, 1.5f), v = randn({B, L, Hkv, Dh});
    Tensor mask = Tensor::zeros({B, L});
    for (int64_t j = 0; j < L; ++j) {
        mask.f32()[j] = 1.0f;
        mask.f32()[L + j] = j >= left ? 1.0f : 0.0f;
        mask.f32()[2 * L + j] = j < L - right ? 1.0f : 0.0f;
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
    be->reset_path_counts();
    std::vector<float> got = down(be->causal_attention(up(q), up(k), up(v), up(mask)));
    const std::string paths = be->path_summary();
    EXPECT_TRUE(all_finite(got)) << paths;
    EXPECT_LE(rel_error(got, to_float(ref)), 5e-3) << paths;
    const int64_t row = H * Dh;
    int64_t nonzero_left = 0, nonzero_empty = 0;
    for (int64_t i = 0; i < left * row; ++i) nonzero_left += got[L * row + i] != 0.0f;
    for (int64_t i = 0; i < L * row; ++i) nonzero_empty += got[3 * L * row + i] != 0.0f;
    EXPECT_EQ(nonzero_left, 0) << paths << ": the left-padded queries that see no real key";
    EXPECT_EQ(nonzero_empty, 0) << paths << ": the all-padding sample";
    return paths;
}

TEST_F(CudaTextOps, CausalGroupedAttentionOnCudnn) {
    // The text encoders' head dim; an odd length (the bias rows are padded to 8) and one past a 128-row tile.
    for (int64_t L : {37, 129}) {
        const std::string paths = check_causal_attention(L, 4, 2, 128);
        EXPECT_NE(paths.find("causal_attention->cudnn"), std::string::npos) << "L " << L << ": " << paths;
    }
}

TEST_F(CudaTextOps, CausalGroupedAttentionOnOwnKernel) {
    // A head dim cuDNN's SDPA refuses (not a multiple of 8) takes the warp-per-query kernel.
    const std::string paths = check_causal_attention(37, 4, 2, 20);
    EXPECT_NE(paths.find("causal_attention->kernel"), std::string::npos) << paths;
}

}  // namespace
}  // namespace flux2::test
