// The CUDA column-range ops (Backend::*_into) against the CPU backend's fp32 compositions on the same BF16 inputs,
// at FLUX.2-like column offsets (a packed [q | k | v | gate | up] projection) and odd token counts.
#include "cuda_test_util.h"

namespace flux2::test {
namespace {

using CudaColumnOpsTest = CudaTest;

constexpr double kTol = 1e-2;  // BF16 outputs

TEST_F(CudaColumnOpsTest, SingleBlockPathMatchesTheCpuComposition) {
    auto cpu = make_backend(BackendOptions{});
    for (int64_t L : {37, 256}) {
        const int64_t B = 1, H = 4, Dh = 128, D = H * Dh, M = 3 * D;
        Tensor p = randn({B, L, 3 * D + 2 * M}), wq = randn({Dh}, 0.2f, 1.0f), wk = randn({Dh}, 0.2f, 1.0f);
        Tensor cos = randn({L, Dh}, 0.5f), sin = randn({L, Dh}, 0.5f);
        auto run = [&](Backend& b, bool device) {
            auto put = [&](const Tensor& t) { return device ? b.upload(t) : t; };
            Tensor dp = put(p);
            Tensor q = b.uninitialized({B, L, H, Dh}), k = b.uninitialized({B, L, H, Dh});
            b.rms_norm_rope_into(dp, 0, put(wq), put(cos), put(sin), 1e-6f, q, 0);
            b.rms_norm_rope_into(dp, D, put(wk), put(cos), put(sin), 1e-6f, k, 0);
            Tensor o = b.uninitialized({B, L, D + M});
            b.attention_into(q, k, dp, 2 * D, o, 0);
            b.swiglu_into(dp, 3 * D, M, o, D);
            return b.download(o).to_vector();
        };
        std::vector<float> got = run(*be, true), ref = run(*cpu, false);
        ASSERT_TRUE(all_finite(got)) << "L=" << L;
        EXPECT_LE(rel_error(got, ref), kTol) << "L=" << L;
    }
}

TEST_F(CudaColumnOpsTest, JointTokensAreWrittenAtTheirOffsets) {
    auto cpu = make_backend(BackendOptions{});
    const int64_t B = 2, Lt = 7, Li = 33, H = 2, Dh = 64, D = H * Dh;
    Tensor pt = randn({B, Lt, 3 * D}), pi = randn({B, Li, 3 * D}), w = randn({Dh}, 0.2f, 1.0f);
    Tensor cos = randn({Lt + Li, Dh}, 0.5f), sin = randn({Lt + Li, Dh}, 0.5f);
    auto run = [&](Backend& b, bool device) {
        auto put = [&](const Tensor& t) { return device ? b.upload(t) : t; };
        Tensor q = b.uninitialized({B, Lt + Li, H, Dh}), v = b.uninitialized({B, Lt + Li, D});
        Tensor c = put(cos), s = put(sin);
        b.rms_norm_rope_into(put(pt), 0, put(w), b.slice(c, 0, 0, Lt), b.slice(s, 0, 0, Lt), 1e-6f, q, 0);
        b.rms_norm_rope_into(put(pi), 0, put(w), b.slice(c, 0, Lt, Li), b.slice(s, 0, Lt, Li), 1e-6f, q, Lt);
        b.copy_into(put(pt), 2 * D, D, v, 0, 0);
        b.copy_into(put(pi), 2 * D, D, v, Lt, 0);
        std::vector<float> out = b.download(q).to_vector(), vv = b.download(v).to_vector();
        out.insert(out.end(), vv.begin(), vv.end());
        return out;
    };
    std::vector<float> got = run(*be, true), ref = run(*cpu, false);
    ASSERT_TRUE(all_finite(got));
    EXPECT_LE(rel_error(got, ref), kTol);
}

}  // namespace
}  // namespace flux2::test
