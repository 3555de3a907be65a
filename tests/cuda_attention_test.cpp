// CUDA attention (cuDNN SDPA, BF16 and FP8) against an fp64 softmax(Q K^T / sqrt(Dh)) V on the CPU, including
// sequence lengths that are not multiples of any tile size.
#include <algorithm>
#include <cmath>
#include <string>

#include "cuda_test_util.h"
#include "quant/float_codecs.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/attention_wide_head.h"
#endif

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

// The wide-head path holds its scores a chunk of queries at a time (the VAE at 1024² takes four chunks): chunks of
// a few rows, the last one partial, give the same attention.
TEST_F(CudaAttention, WideHeadChunksMatchSoftmaxReference) {
#ifdef FLUX2_HAVE_CUDA
    const int64_t B = 2, L = 45, H = 2, Dh = 320;
    const Tensor q = randn({B, L, H, Dh}, 0.3f), k = randn({B, L, H, Dh}, 0.3f), v = randn({B, L, H, Dh});
    const Tensor dq = up(q), dk = up(k), dv = up(v);
    Tensor o = be->uninitialized({B, L, H, Dh});
    be->synchronize();
    int device = 0;
    ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
    auto stream = std::make_shared<cuda::Stream>(device);
    cuda::WideHeadAttention wide(stream, 8 * 4 * L * H);  // 8 query rows a chunk: 6 chunks, the last of 5 rows
    wide.run(static_cast<const cuda::bf16*>(dq.raw()), static_cast<const cuda::bf16*>(dk.raw()),
             static_cast<const cuda::bf16*>(dv.raw()), static_cast<cuda::bf16*>(o.raw()), B, L, H, Dh, H * Dh, H * Dh);
    ASSERT_EQ(cudaStreamSynchronize(stream->get()), cudaSuccess);
    const std::vector<float> got = down(o);
    ASSERT_TRUE(all_finite(got));
    EXPECT_LE(rel_error(got, attention_ref(q, k, v)), kTol);
#endif
}

// FP8 attention: E4M3 Q, K, V (one scale each, from the tensor's amax), probabilities and output. E4M3 keeps 3
// mantissa bits, so every operand carries up to 6% rounding: these peaked softmaxes (logits of std ~2) come out
// 6-8% from the fp64 reference on an H200, FLUX.2-dev's blocks at 1024x1024 3.5% (bench --attention-error). The
// bound leaves room above that and still catches a wrong scale (which is off by far more); the scales follow the
// data, so inputs far from 1 in magnitude fare the same.
constexpr double kFp8Tol = 0.1;

class CudaAttentionFp8 : public CudaTest {
protected:
    void SetUp() override {
        CudaTest::SetUp();
        if (IsSkipped()) return;
#ifdef FLUX2_HAVE_CUDA
        if (!fp8_sdpa_device()) GTEST_SKIP() << "FP8 attention needs a Hopper (compute 9.0) or newer GPU";
        BackendOptions options;
        options.device = "cuda";
        options.precision = "fp8";
        options.attention = "fp8";
        options.check_attention = check_attention();
        be = make_cuda_backend(options);
        cuda = static_cast<CudaBackend*>(be.get());
        cuda->set_poison_new_tensors(true);
        ASSERT_TRUE(cuda->fp8_attention());
#endif
    }
    virtual bool check_attention() const { return false; }

    static bool fp8_sdpa_device() {
#ifdef FLUX2_HAVE_CUDA
        int device = 0, major = 0;
        return cudaGetDevice(&device) == cudaSuccess &&
               cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess && major >= 9;
#else
        return false;
#endif
    }
};

TEST_F(CudaAttentionFp8, MatchesSoftmaxReference) {
    struct Case {
        int64_t B, L, H, Dh;
        float magnitude;  // of V (Q and K scaled so that the softmax is neither flat nor one-hot)
    };
    for (Case c : {Case{1, 24, 2, 32, 1.0f}, Case{2, 21, 4, 32, 1.0f}, Case{1, 333, 3, 128, 1.0f},
                   Case{2, 130, 2, 64, 1.0f}, Case{1, 200, 2, 128, 300.0f}, Case{1, 200, 2, 128, 1e-3f}}) {
        Tensor q = randn({c.B, c.L, c.H, c.Dh}, 1.5f), k = randn({c.B, c.L, c.H, c.Dh}, 1.5f);
        Tensor v = randn({c.B, c.L, c.H, c.Dh}, c.magnitude);
        std::vector<float> got = down(be->attention(up(q), up(k), up(v)));
        ASSERT_TRUE(all_finite(got));
        const double err = rel_error(got, attention_ref(q, k, v));
        EXPECT_LE(err, kFp8Tol) << c.B << "x" << c.L << "x" << c.H << "x" << c.Dh << " |v| ~" << c.magnitude;
        EXPECT_GT(err, 1e-4) << "no E4M3 rounding visible: did the BF16 path run?";
    }
    EXPECT_NE(be->path_summary().find("attention->fp8 x6"), std::string::npos) << be->path_summary();
}

// The transformer's form: v a column range of the fused projection, the output written into a column range of a
// wider tensor (the single block's [attn | mlp]); the columns around it stay as they were.
TEST_F(CudaAttentionFp8, ColumnRangesMatchThePackedCall) {
    const int64_t B = 1, L = 150, H = 2, Dh = 64, D = H * Dh;
    Tensor q = randn({B, L, H, Dh}, 1.5f), k = randn({B, L, H, Dh}, 1.5f), vwide = randn({B, L, 3 * D});
    Tensor v = Tensor::zeros({B, L, H, Dh});
    for (int64_t t = 0; t < B * L; ++t)
        for (int64_t j = 0; j < D; ++j) v.f32()[t * D + j] = vwide.f32()[t * 3 * D + D + j];
    Tensor out = cuda->zeros({B, L, D + 16 + 32});
    be->attention_into(up(q), up(k), up(vwide), D, out, 16);
    std::vector<float> wide = down(out), got;
    for (int64_t t = 0; t < B * L; ++t)
        for (int64_t j = 0; j < D + 48; ++j) {
            const float x = wide[t * (D + 48) + j];
            if (j >= 16 && j < 16 + D) {
                got.push_back(x);
            } else {
                ASSERT_EQ(x, 0.0f) << "column " << j << " outside the output range was written";
            }
        }
    EXPECT_LE(rel_error(got, attention_ref(q, k, v)), kFp8Tol);
    EXPECT_EQ(got, down(be->attention(up(q), up(k), up(v)))) << "the column-range call differs from the packed one";
}

// Head dims FP8 SDPA does not take (a multiple of 16 up to 256) run in BF16, counted as such.
TEST_F(CudaAttentionFp8, OtherHeadDimsRunInBf16) {
    Tensor q = randn({1, 40, 2, 24}, 1.5f), k = randn({1, 40, 2, 24}, 1.5f), v = randn({1, 40, 2, 24});
    std::vector<float> got = down(be->attention(up(q), up(k), up(v)));
    EXPECT_LE(rel_error(got, attention_ref(q, k, v)), kTol);
    EXPECT_NE(be->path_summary().find("attention->bf16 x1"), std::string::npos) << be->path_summary();
    EXPECT_EQ(be->path_summary().find("attention->fp8"), std::string::npos) << be->path_summary();
}

// Q and K written as E4M3 by the norm kernel (attention_qk_buffer): the scale is the gains' bound, 1.01 sqrt(Dh)
// max|w| / 448 (over both streams' gains), each code is the BF16 result of rms_norm_rope divided by it, and the
// attention of such buffers (V a column range, as in the single block) is as close to the fp64 reference as the
// attention of BF16 q and k.
TEST_F(CudaAttentionFp8, QkFromTheNormKernel) {
    const int64_t B = 1, Lt = 40, Li = 161, L = Lt + Li, H = 2, Dh = 128, D = H * Dh;
    Tensor x_txt = randn({B, Lt, D}, 2.0f), x_img = randn({B, Li, D}, 2.0f), vwide = randn({B, L, 2 * D});
    Tensor w_txt = randn({Dh}, 0.8f, 1.0f), w_img = randn({Dh}, 0.5f, 0.3f);
    Tensor cos = randn({L, Dh}, 0.7f), sin = randn({L, Dh}, 0.7f);
    for (int64_t i = 0; i < L * Dh; ++i) {  // a real rotation per pair, as RoPE's tables hold
        const float a = cos.f32()[i] + 3.0f * sin.f32()[i];
        cos.f32()[i] = round_bf16(std::cos(a));
        sin.f32()[i] = round_bf16(std::sin(a));
    }
    Tensor cos_dev = up(cos), sin_dev = up(sin);
    Tensor cos_img = be->slice(cos_dev, 0, Lt, Li), sin_img = be->slice(sin_dev, 0, Lt, Li);
    Tensor wt = up(w_txt), wi = up(w_img), xt = up(x_txt), xi = up(x_img);

    Tensor q8 = be->attention_qk_buffer({B, L, H, Dh}, {&wt, &wi});
    ASSERT_EQ(q8.dtype(), DType::F8_E4M3);
    Tensor q16 = be->uninitialized({B, L, H, Dh});
    for (Tensor* out : {&q8, &q16}) {
        be->rms_norm_rope_into(xt, 0, wt, be->slice(cos_dev, 0, 0, Lt), be->slice(sin_dev, 0, 0, Lt), 1e-6f, *out, 0);
        be->rms_norm_rope_into(xi, 0, wi, cos_img, sin_img, 1e-6f, *out, Lt);
    }
    // The buffer's scale, and codes equal to its BF16 twin divided by it, none saturated.
    auto expect_codes = [&](const Tensor& fp8, const Tensor& bf16, float wmax, const char* what) {
        const Fp8Qk parts = CudaBackend::fp8_qk_parts(fp8);
        cuda->synchronize();
        float descale = 0.0f;
        ASSERT_EQ(cudaMemcpy(&descale, parts.descale, 4, cudaMemcpyDeviceToHost), cudaSuccess);
        EXPECT_NEAR(descale, 1.01f * std::sqrt(float(Dh)) * wmax / 448.0f, 1e-6f * descale) << what;
        std::vector<uint8_t> codes(fp8.numel());
        ASSERT_EQ(cudaMemcpy(codes.data(), parts.codes, codes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
        const std::vector<float> want = down(bf16);
        int64_t mismatches = 0, saturated = 0;
        for (size_t i = 0; i < codes.size(); ++i) {
            mismatches += codes[i] != f32_to_e4m3(want[i] * (1.0f / descale));
            saturated += (codes[i] & 0x7F) == 0x7E;  // +-448
        }
        EXPECT_EQ(mismatches, 0) << what;
        EXPECT_EQ(saturated, 0) << what << ": the bound must keep every code below the top of the E4M3 range";
    };
    auto max_abs = [&](const Tensor& w) {
        float m = 0.0f;
        for (int64_t i = 0; i < w.numel(); ++i) m = std::max(m, std::fabs(w.f32()[i]));
        return m;
    };
    expect_codes(q8, q16, std::max(max_abs(w_txt), max_abs(w_img)), "two streams");
    // Heads at a column that breaks 16-byte alignment (rows of D + 2): the one-warp-per-head kernel.
    Tensor xw = up(randn({B, Lt, D + 2}, 2.0f));
    Tensor a8 = be->attention_qk_buffer({B, Lt, H, Dh}, {&wt}), a16 = be->uninitialized({B, Lt, H, Dh});
    for (Tensor* out : {&a8, &a16})
        be->rms_norm_rope_into(xw, 2, wt, be->slice(cos_dev, 0, 0, Lt), be->slice(sin_dev, 0, 0, Lt), 1e-6f, *out, 0);
    expect_codes(a8, a16, max_abs(w_txt), "unaligned heads");

    // Attention on the FP8 buffers against the fp64 reference of the BF16 q, k.
    Tensor k8 = be->attention_qk_buffer({B, L, H, Dh}, {&wt, &wi}), k16 = be->uninitialized({B, L, H, Dh});
    Tensor kt = up(randn({B, Lt, D}, 2.0f)), ki = up(randn({B, Li, D}, 2.0f));
    for (Tensor* out : {&k8, &k16}) {
        be->rms_norm_rope_into(kt, 0, wt, be->slice(cos_dev, 0, 0, Lt), be->slice(sin_dev, 0, 0, Lt), 1e-6f, *out, 0);
        be->rms_norm_rope_into(ki, 0, wi, cos_img, sin_img, 1e-6f, *out, Lt);
    }
    be->reset_path_counts();
    Tensor o = cuda->zeros({B, L, D});
    be->attention_into(q8, k8, up(vwide), D, o, 0);
    EXPECT_NE(be->path_summary().find("attention->fp8 x1"), std::string::npos) << be->path_summary();
    Tensor v = Tensor::zeros({B, L, H, Dh});
    for (int64_t t = 0; t < B * L; ++t)
        for (int64_t j = 0; j < D; ++j) v.f32()[t * D + j] = vwide.f32()[t * 2 * D + D + j];
    Tensor q_host = be->download(q16), k_host = be->download(k16);
    std::vector<float> got = down(o);
    ASSERT_TRUE(all_finite(got));
    const double err = rel_error(got, attention_ref(q_host, k_host, v));
    EXPECT_LE(err, kFp8Tol);
    EXPECT_GT(err, 1e-4);
}

class CudaAttentionFp8Check : public CudaAttentionFp8 {
    bool check_attention() const override { return true; }
};

// --attention-error: every FP8 call in order with its difference to the BF16 attention of the same inputs, which is
// what the test's own reference sees too.
// --attention-error compares with the BF16 attention of the same BF16 q and k: the q/k buffers stay BF16.
TEST_F(CudaAttentionFp8Check, KeepsBf16QkBuffers) {
    Tensor w = up(randn({128}, 0.5f, 1.0f));
    EXPECT_EQ(be->attention_qk_buffer({1, 64, 2, 128}, {&w}).dtype(), DType::BF16);
}

TEST_F(CudaAttentionFp8Check, ReportsEachCallAgainstBf16) {
    std::vector<double> want;
    for (int64_t L : {64, 257}) {
        Tensor q = randn({1, L, 2, 128}, 1.5f), k = randn({1, L, 2, 128}, 1.5f), v = randn({1, L, 2, 128});
        std::vector<float> got = down(be->attention(up(q), up(k), up(v)));
        want.push_back(rel_error(got, attention_ref(q, k, v)));
    }
    const std::vector<Backend::AttentionError> errors = be->attention_errors();
    ASSERT_EQ(errors.size(), 2u);
    EXPECT_EQ(errors[0].shape, "[1, 64, 2, 128]");
    EXPECT_EQ(errors[1].shape, "[1, 257, 2, 128]");
    // Each reported difference is within the BF16 reference's own error of the fp64 one.
    for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_NEAR(errors[i].relative, want[i], 1.5e-2) << errors[i].shape;
        EXPECT_GT(errors[i].relative, 1e-4) << errors[i].shape;
    }
    EXPECT_TRUE(be->attention_errors().empty()) << "the list starts anew after each call";
}

TEST(CudaAttentionOptions, FollowThePrecisionAndRefuseUnknownValues) {
    BackendOptions cpu;
    cpu.device = "cpu";
    cpu.attention = "fp8";
    EXPECT_THROW(make_backend(cpu), Error);
    cpu.attention = "auto";
    EXPECT_NO_THROW(make_backend(cpu));
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible: the rest runs on the GPU machine";
    auto resolved = [](const std::string& precision, const std::string& attention) {
        BackendOptions o;
        o.device = "cuda";
        o.precision = precision;
        o.attention = attention;
        auto be = make_cuda_backend(o);
        return static_cast<CudaBackend*>(be.get())->fp8_attention();
    };
    int device = 0, major = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    EXPECT_FALSE(resolved("bf16", "auto"));
    EXPECT_FALSE(resolved("fp8", "bf16"));
    EXPECT_EQ(resolved("fp8", "auto"), major >= 9);
    if (major >= 9) EXPECT_TRUE(resolved("bf16", "fp8"));
    EXPECT_THROW(resolved("fp8", "fp16"), Error);
#endif
}

}  // namespace
}  // namespace flux2::test
