// CUDA attention (cuDNN SDPA in BF16; FP8 through flux2's sm_90a kernel and cuDNN's FP8 SDPA) against an fp64
// softmax(Q K^T / sqrt(Dh)) V on the CPU, including sequence lengths that are not multiples of any tile size.
#include <algorithm>
#include <cmath>
#include <string>

#include "cuda_test_util.h"
#include "quant/float_codecs.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/attention_fp8.h"
#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/attention_fp8_sm90.h"
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

// How many calls a path summary counts for one path ("attention->fp8(sm90)"), 0 when it has none.
int64_t path_count(const std::string& summary, const std::string& path) {
    const std::string key = path + " x";
    const size_t at = summary.find(key);
    return at == std::string::npos ? 0 : std::stoll(summary.substr(at + key.size()));
}
int64_t fp8_calls(const std::string& summary) {
    return path_count(summary, "attention->fp8(sm90)") + path_count(summary, "attention->fp8(cudnn)");
}

// Run with --attention fp8 (cuDNN's FP8 SDPA) and fp8-flux2 (flux2's kernel for head dim 128 on sm_90, cuDNN's for
// the rest; skipped where the kernel cannot run).
class CudaAttentionFp8 : public CudaTest, public ::testing::WithParamInterface<std::string> {
protected:
    void SetUp() override {
        CudaTest::SetUp();
        if (IsSkipped()) return;
#ifdef FLUX2_HAVE_CUDA
        if (!fp8_sdpa_device()) GTEST_SKIP() << "FP8 attention needs a Hopper (compute 9.0) or newer GPU";
        if (GetParam() == "fp8-flux2" && !cuda::attention_fp8_sm90_available())
            GTEST_SKIP() << "flux2's FP8 attention kernel needs an sm_90 GPU and a build for sm_90a";
        BackendOptions options;
        options.device = "cuda";
        options.precision = "fp8";
        options.attention = GetParam();
        options.check_attention = check_attention();
        be = make_cuda_backend(options);
        cuda = static_cast<CudaBackend*>(be.get());
        cuda->set_poison_new_tensors(true);
        ASSERT_TRUE(cuda->fp8_attention());
#endif
    }
    virtual bool check_attention() const { return false; }
    // Whether head dim Dh runs on flux2's kernel here.
    bool own_kernel(int64_t Dh) const {
#ifdef FLUX2_HAVE_CUDA
        return GetParam() == "fp8-flux2" && Dh == 128;
#else
        return false;
#endif
    }

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

// Head dim 128 on flux2's kernel: a partial query tile, a partial KV tile, two batches (tiles reaching into the next
// batch's rows), more KV tiles than pipeline stages.
TEST_P(CudaAttentionFp8, MatchesSoftmaxReference) {
    struct Case {
        int64_t B, L, H, Dh;
        float magnitude;  // of V (Q and K scaled so that the softmax is neither flat nor one-hot)
    };
    const std::vector<Case> cases = {Case{1, 24, 2, 32, 1.0f},     Case{2, 21, 4, 32, 1.0f},
                                     Case{1, 333, 3, 128, 1.0f},   Case{2, 130, 2, 64, 1.0f},
                                     Case{1, 200, 2, 128, 300.0f}, Case{1, 200, 2, 128, 1e-3f},
                                     Case{2, 333, 3, 128, 1.0f},   Case{1, 1000, 2, 128, 1.0f}};
    int64_t own = 0;
    for (Case c : cases) {
        own += own_kernel(c.Dh);
        Tensor q = randn({c.B, c.L, c.H, c.Dh}, 1.5f), k = randn({c.B, c.L, c.H, c.Dh}, 1.5f);
        Tensor v = randn({c.B, c.L, c.H, c.Dh}, c.magnitude);
        std::vector<float> got = down(be->attention(up(q), up(k), up(v)));
        ASSERT_TRUE(all_finite(got));
        const double err = rel_error(got, attention_ref(q, k, v));
        EXPECT_LE(err, kFp8Tol) << c.B << "x" << c.L << "x" << c.H << "x" << c.Dh << " |v| ~" << c.magnitude;
        EXPECT_GT(err, 1e-4) << "no E4M3 rounding visible: did the BF16 path run?";
    }
    const std::string paths = be->path_summary();
    EXPECT_EQ(fp8_calls(paths), static_cast<int64_t>(cases.size())) << paths;
    EXPECT_EQ(path_count(paths, "attention->fp8(sm90)"), own) << paths;
}

// The transformer's form: v a column range of the fused projection, the output written into a column range of a
// wider tensor (the single block's [attn | mlp]); the columns around it stay as they were.
TEST_P(CudaAttentionFp8, ColumnRangesMatchThePackedCall) {
    for (const int64_t Dh : {int64_t{64}, int64_t{128}}) {
        const int64_t B = 1, L = 150, H = 2, D = H * Dh;
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
        EXPECT_LE(rel_error(got, attention_ref(q, k, v)), kFp8Tol) << "Dh " << Dh;
        EXPECT_EQ(got, down(be->attention(up(q), up(k), up(v)))) << "the column-range call differs from the packed one";
    }
}

// Head dims FP8 SDPA does not take (a multiple of 16 up to 256) run in BF16, counted as such.
TEST_P(CudaAttentionFp8, OtherHeadDimsRunInBf16) {
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
TEST_P(CudaAttentionFp8, QkFromTheNormKernel) {
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
    EXPECT_EQ(path_count(be->path_summary(), own_kernel(Dh) ? "attention->fp8(sm90)" : "attention->fp8(cudnn)"), 1)
        << be->path_summary();
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
TEST_P(CudaAttentionFp8Check, KeepsBf16QkBuffers) {
    Tensor w = up(randn({128}, 0.5f, 1.0f));
    EXPECT_EQ(be->attention_qk_buffer({1, 64, 2, 128}, {&w}).dtype(), DType::BF16);
}

TEST_P(CudaAttentionFp8Check, ReportsEachCallAgainstBf16) {
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

// flux2's kernel and cuDNN's FP8 SDPA quantize Q, K, V and the probabilities alike, so they agree far more closely
// than either agrees with the fp64 reference; and the E4M3 output (O / V's descale, what the single block's row
// quantizer reads) is the BF16 one within E4M3's rounding.
TEST_P(CudaAttentionFp8, OwnKernelAgreesWithCudnnAndKeepsE4m3Output) {
#ifdef FLUX2_HAVE_CUDA
    if (!own_kernel(128)) GTEST_SKIP() << "flux2's FP8 attention kernel runs with --attention fp8-flux2 only";
    const int64_t B = 2, L = 777, H = 3, Dh = 128, n = B * L * H * Dh;
    Tensor q = randn({B, L, H, Dh}, 1.5f), k = randn({B, L, H, Dh}, 1.5f), v = randn({B, L, H, Dh});
    BackendOptions options;
    options.device = "cuda";
    options.precision = "fp8";
    options.attention = "fp8";
    auto cudnn = make_cuda_backend(options);
    const std::vector<float> ours = down(be->attention(up(q), up(k), up(v)));
    const std::vector<float> theirs =
        cudnn->download(cudnn->attention(cudnn->upload(q), cudnn->upload(k), cudnn->upload(v))).to_vector();
    EXPECT_EQ(path_count(cudnn->path_summary(), "attention->fp8(cudnn)"), 1) << cudnn->path_summary();
    const std::vector<float> ref = attention_ref(q, k, v);
    const double ours_err = rel_error(ours, ref), cudnn_err = rel_error(theirs, ref), apart = rel_error(ours, theirs);
    EXPECT_LE(ours_err, kFp8Tol);
    // cuDNN's output also goes through E4M3 (dequantized by our pass), ours goes to BF16 directly.
    EXPECT_LE(apart, 0.6 * cudnn_err) << "ours " << ours_err << ", cuDNN's " << cudnn_err << ", apart " << apart;

    // E4M3 codes of Q and K with one scale each (what the norm kernel writes), the output in BF16 and in E4M3.
    auto codes_of = [&](const Tensor& x, float& descale) {
        float amax = 0.0f;
        for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x.f32()[i]));
        descale = amax / 448.0f;
        std::vector<uint8_t> c(n);
        for (int64_t i = 0; i < n; ++i) c[i] = f32_to_e4m3(x.f32()[i] / descale);
        return c;
    };
    float scales[2];
    const std::vector<uint8_t> qc = codes_of(q, scales[0]), kc = codes_of(k, scales[1]);
    Tensor dev = be->uninitialized({2 * n + 16});  // BF16 elements: 4 n bytes, enough for both codes and scales
    auto* bytes = static_cast<uint8_t*>(dev.raw());
    ASSERT_EQ(cudaMemcpy(bytes, qc.data(), n, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(bytes + n, kc.data(), n, cudaMemcpyHostToDevice), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(bytes + 2 * n, scales, sizeof(scales), cudaMemcpyHostToDevice), cudaSuccess);
    const auto* descales = reinterpret_cast<const float*>(bytes + 2 * n);
    int device = 0;
    ASSERT_EQ(cudaGetDevice(&device), cudaSuccess);
    auto stream = std::make_shared<cuda::Stream>(device);
    cuda::Fp8Attention attention(stream, true);
    Tensor vd = up(v), o = be->uninitialized({B, L, H, Dh});
    be->synchronize();
    attention.run_fp8_qk(bytes, descales, bytes + n, descales + 1, static_cast<const cuda::bf16*>(vd.raw()),
                         static_cast<cuda::bf16*>(o.raw()), B, L, H, Dh);
    const cuda::Fp8AttentionCodes o8 = attention.run_fp8_qk_e4m3_out(
        bytes, descales, bytes + n, descales + 1, static_cast<const cuda::bf16*>(vd.raw()), B, L, H, Dh);
    ASSERT_EQ(cudaStreamSynchronize(stream->get()), cudaSuccess);
    EXPECT_EQ(o8.descale, cuda::Fp8Attention::e4m3_output_descale(o8.codes, n));
    std::vector<uint8_t> oc(n);
    float o_descale = 0.0f;
    ASSERT_EQ(cudaMemcpy(oc.data(), o8.codes, n, cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(&o_descale, o8.descale, 4, cudaMemcpyDeviceToHost), cudaSuccess);
    float v_amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) v_amax = std::max(v_amax, std::fabs(v.f32()[i]));
    EXPECT_FLOAT_EQ(o_descale, v_amax / 448.0f) << "O in E4M3 takes V's scale";
    const std::vector<float> o_bf16 = down(o);
    std::vector<float> o_e4m3(n);
    for (int64_t i = 0; i < n; ++i) o_e4m3[i] = e4m3_to_f32(oc[i]) * o_descale;
    EXPECT_LE(rel_error(o_bf16, ref), kFp8Tol);
    EXPECT_LE(rel_error(o_e4m3, o_bf16), 0.04) << "E4M3 keeps 3 mantissa bits: ~2.5% rms";
    EXPECT_GT(rel_error(o_e4m3, o_bf16), 1e-3) << "the E4M3 output looks unrounded";
#endif
}

std::string kernel_name(const ::testing::TestParamInfo<std::string>& p) { return p.param == "fp8" ? "Cudnn" : "Flux2"; }
INSTANTIATE_TEST_SUITE_P(Kernels, CudaAttentionFp8, ::testing::Values("fp8", "fp8-flux2"), kernel_name);
INSTANTIATE_TEST_SUITE_P(Kernels, CudaAttentionFp8Check, ::testing::Values("fp8", "fp8-flux2"), kernel_name);

TEST(CudaAttentionOptions, FollowThePrecisionAndRefuseUnknownValues) {
    BackendOptions cpu;
    cpu.device = "cpu";
    cpu.attention = "fp8";
    EXPECT_THROW(make_backend(cpu), Error);
    cpu.attention = "fp8-flux2";
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
    if (cuda::attention_fp8_sm90_available()) {
        EXPECT_TRUE(resolved("bf16", "fp8-flux2"));
    } else {
        EXPECT_THROW(resolved("fp8", "fp8-flux2"), Error);
    }
    EXPECT_THROW(resolved("fp8", "fp16"), Error);
#endif
}

}  // namespace
}  // namespace flux2::test
