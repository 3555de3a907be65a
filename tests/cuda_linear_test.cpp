// CUDA linear layers: the BF16 path (dense, NVFP4 and FP8 weights dequantized to BF16) and the FP8 path (NVFP4 ->
// per-channel E4M3, per-token E4M3 activations). Each is compared with an fp64 CPU product of exactly the operands
// the path is meant to use, so the tolerance only covers accumulation order and BF16 output rounding; the FP8 path
// is also compared with the exact product, with the looser bound its quantization implies.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda_test_util.h"
#include "quant/float_codecs.h"
#include "quant/linear_weight.h"
#include "quant/nvfp4_quantizer.h"
#ifdef FLUX2_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace flux2::test {
namespace {

constexpr double kTol = 5e-3;
constexpr double kFp8VsExactTol = 8e-2;  // two E4M3 operands: a few percent relative error by construction

LinearWeight nvfp4_weight(const Tensor& w) {
    LinearWeight lw;
    lw.name = "test.nvfp4";
    lw.out_features = w.dim(0);
    lw.in_features = w.dim(1);
    lw.format = WeightFormat::nvfp4;
    lw.nvfp4 = quantize_nvfp4_weight(w.f32(), w.dim(0), w.dim(1));
    return lw;
}

LinearWeight fp8_weight(const Tensor& w) {
    LinearWeight lw;
    lw.name = "test.fp8";
    lw.out_features = w.dim(0);
    lw.in_features = w.dim(1);
    lw.format = WeightFormat::fp8;
    float amax = 0;
    for (int64_t i = 0; i < w.numel(); ++i) amax = std::max(amax, std::fabs(w.f32()[i]));
    lw.fp8.scale = amax / 448.0f;
    for (int64_t i = 0; i < w.numel(); ++i) lw.fp8.codes.push_back(f32_to_e4m3(w.f32()[i] / lw.fp8.scale));
    return lw;
}

// Rows of v [rows, cols] replaced by their per-row E4M3 quantization (scale = amax / 448), as the FP8 path does.
std::vector<float> fp8_rows(std::vector<float> v, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
        float* row = v.data() + r * cols;
        float amax = 0;
        for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(row[i]));
        const float scale = amax > 0 ? amax / 448.0f : 1.0f;
        for (int64_t i = 0; i < cols; ++i) row[i] = e4m3_to_f32(f32_to_e4m3(row[i] / scale)) * scale;
    }
    return v;
}

// y [m, n] = x [m, k] w [n, k]^T in fp64.
std::vector<float> matmul_nt(const std::vector<float>& x, const std::vector<float>& w, int64_t m, int64_t n,
                             int64_t k) {
    std::vector<float> y(m * n);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double acc = 0;
            for (int64_t l = 0; l < k; ++l) acc += double(x[i * k + l]) * w[j * k + l];
            y[i * n + j] = static_cast<float>(acc);
        }
    return y;
}

std::vector<float> bf16_values(std::vector<float> v) {
    for (float& x : v) x = round_bf16(x);
    return v;
}

class CudaLinearBf16 : public CudaTest {};

TEST_F(CudaLinearBf16, EveryWeightFormat) {
    struct Case {
        int64_t m, n, k;
        WeightFormat format;
    };
    // Odd token counts everywhere; k = 33 is not 16-byte aligned (dense only: NVFP4 needs k % 16 == 0).
    for (Case c : {Case{37, 24, 40, WeightFormat::dense}, Case{5, 8, 33, WeightFormat::dense},
                   Case{19, 48, 64, WeightFormat::nvfp4}, Case{130, 96, 256, WeightFormat::nvfp4},
                   Case{7, 40, 48, WeightFormat::fp8}}) {
        Tensor x = randn({c.m, c.k}), w = randn({c.n, c.k}, 1.0f / std::sqrt(float(c.k)));
        LinearWeight lw = c.format == WeightFormat::dense   ? dense_bf16_weight(w)
                          : c.format == WeightFormat::nvfp4 ? nvfp4_weight(w)
                                                            : fp8_weight(w);
        std::vector<float> ref = matmul_nt(x.to_vector(), bf16_values(dequantize(lw)), c.m, c.n, c.k);
        for (int rep = 0; rep < 2; ++rep) {  // the second call reuses the prepared weight
            std::vector<float> got = down(be->linear(up(x), lw));
            ASSERT_TRUE(all_finite(got));
            EXPECT_LE(rel_error(got, ref), kTol) << lw.name << " m" << c.m << " n" << c.n << " k" << c.k;
        }
    }
    EXPECT_NE(be->path_summary().find("nvfp4->bf16 x4"), std::string::npos) << be->path_summary();
    EXPECT_NE(be->path_summary().find("bf16->bf16 x4"), std::string::npos) << be->path_summary();
    EXPECT_NE(be->path_summary().find("fp8->bf16 x2"), std::string::npos) << be->path_summary();
}

TEST_F(CudaLinearBf16, BatchedInputAndShapeErrors) {
    Tensor x = randn({2, 5, 64}), w = randn({96, 64}, 0.125f);
    LinearWeight lw = dense_bf16_weight(w);
    Tensor y = be->linear(up(x), lw);
    ASSERT_EQ(y.shape(), (Shape{2, 5, 96}));
    EXPECT_LE(rel_error(down(y), matmul_nt(x.to_vector(), w.to_vector(), 10, 96, 64)), kTol);
    EXPECT_THROW(be->linear(up(randn({3, 63})), lw), Error);
}

class CudaLinearFp8 : public CudaTest {
protected:
    std::string precision() const override { return "fp8"; }
#ifdef FLUX2_HAVE_CUDA
    // A device tensor's bytes, after the stream's work.
    std::vector<uint8_t> bytes(const Tensor& t) {
        std::vector<uint8_t> v(t.nbytes());
        cuda->synchronize();
        EXPECT_EQ(cudaMemcpy(v.data(), t.raw(), v.size(), cudaMemcpyDeviceToHost), cudaSuccess);
        return v;
    }
    // An FP8 q or k buffer [B, L, H, Dh] filled by rms_norm_rope_into from the H heads at column col of p [B, L, ·],
    // as the blocks make them (Dh = the gain's length).
    Tensor normed_qk(const Tensor& p, int64_t col, int64_t H, const Tensor& gain, const Tensor& cos,
                     const Tensor& sin) {
        Tensor t = be->attention_qk_buffer({p.dim(0), p.dim(1), H, gain.numel()}, {&gain});
        be->rms_norm_rope_into(p, col, gain, cos, sin, 1e-6f, t, 0);
        return t;
    }
#endif
};

TEST_F(CudaLinearFp8, Nvfp4WeightsPerChannelTimesPerToken) {
    struct Case {
        int64_t m, n, k;
    };
    for (Case c : {Case{37, 80, 128}, Case{300, 384, 512}, Case{1, 16, 16}}) {
        Tensor x = randn({c.m, c.k}), w = randn({c.n, c.k}, 1.0f / std::sqrt(float(c.k)));
        LinearWeight lw = nvfp4_weight(w);
        const std::vector<float> exact_w = dequantize(lw);
        const std::vector<float> emulated =
            matmul_nt(fp8_rows(x.to_vector(), c.m, c.k), fp8_rows(exact_w, c.n, c.k), c.m, c.n, c.k);
        const std::vector<float> exact = matmul_nt(x.to_vector(), exact_w, c.m, c.n, c.k);
        std::vector<float> got = down(be->linear(up(x), lw));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, emulated), kTol) << "m" << c.m << " n" << c.n << " k" << c.k;
        const double vs_exact = rel_error(got, exact);
        EXPECT_LE(vs_exact, kFp8VsExactTol) << "m" << c.m << " n" << c.n << " k" << c.k;
        std::printf("fp8 linear m%ld n%ld k%ld: rel error vs exact W4A16 product %.4f\n", long(c.m), long(c.n),
                    long(c.k), vs_exact);
    }
    EXPECT_NE(be->path_summary().find("nvfp4->fp8"), std::string::npos) << be->path_summary();
}

TEST_F(CudaLinearFp8, Fp8WeightsKeepTheirCodesAndDenseStaysBf16) {
    Tensor x = randn({9, 64}), w = randn({32, 64}, 0.125f);
    LinearWeight f8 = fp8_weight(w);
    std::vector<float> emulated = matmul_nt(fp8_rows(x.to_vector(), 9, 64), dequantize(f8), 9, 32, 64);
    EXPECT_LE(rel_error(down(be->linear(up(x), f8)), emulated), kTol);

    LinearWeight dense = dense_bf16_weight(w);
    EXPECT_LE(rel_error(down(be->linear(up(x), dense)), matmul_nt(x.to_vector(), w.to_vector(), 9, 32, 64)), kTol);
    EXPECT_NE(be->path_summary().find("fp8->fp8"), std::string::npos) << be->path_summary();
    EXPECT_NE(be->path_summary().find("bf16->bf16 x1"), std::string::npos) << be->path_summary();
}

#ifdef FLUX2_HAVE_CUDA
TEST_F(CudaLinearFp8, PerTokenQuantizerMatchesTheScalarCodec) {
    const int64_t rows = 5, cols = 136;
    Tensor x = randn({rows, cols}, 3.0f);
    for (int64_t i = 0; i < cols; ++i) x.f32()[2 * cols + i] = 0.0f;  // an all-zero row gets scale 1
    Fp8Activations q = cuda->quantize_fp8(up(x));
    std::vector<uint8_t> codes(rows * cols);
    std::vector<float> scales(rows);
    cuda->synchronize();
    ASSERT_EQ(cudaMemcpy(codes.data(), q.codes.raw(), codes.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(scales.data(), q.scales.raw(), rows * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    int mismatches = 0;
    for (int64_t r = 0; r < rows; ++r) {
        float amax = 0;
        for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(x.f32()[r * cols + i]));
        const float scale = amax > 0 ? amax / 448.0f : 1.0f;
        EXPECT_EQ(scales[r], scale) << "row " << r;
        for (int64_t i = 0; i < cols; ++i)
            mismatches += codes[r * cols + i] != f32_to_e4m3(x.f32()[r * cols + i] * (1.0f / scale));
    }
    EXPECT_EQ(mismatches, 0);
}
#endif

#ifdef FLUX2_HAVE_CUDA
// The producers with fused quantization (layer_norm_modulate_for, swiglu_for) write exactly what quantizing the
// plain ops' BF16 output writes, and linear() takes their result; for a layer that does not run in FP8 they return
// the plain BF16 result, and FP8 activations given to such a layer are refused.
TEST_F(CudaLinearFp8, FusedProducersEqualQuantizingTheBf16Output) {
    auto expect_same = [&](const Tensor& fused, const Tensor& bf16_result, const char* what) {
        ASSERT_EQ(fused.dtype(), DType::F8_E4M3) << what;
        Fp8Activations got = CudaBackend::fp8_parts(fused), want = cuda->quantize_fp8(bf16_result);
        EXPECT_EQ(bytes(got.codes), bytes(want.codes)) << what;
        EXPECT_EQ(bytes(got.scales), bytes(want.scales)) << what;
    };
    // Widths held in registers by the LayerNorm (64, 144, 2064, 6144) and one re-read for every pass (8208).
    for (int64_t D : {64, 144, 2064, 6144, 8208}) {
        LinearWeight w = nvfp4_weight(randn({32, D}, 0.1f));
        Tensor x = up(randn({2, 7, D}, 2.0f, 0.3f)), shift = up(randn({2, D}, 0.5f)), scale = up(randn({2, D}, 0.5f));
        Tensor fused = be->layer_norm_modulate_for(w, x, shift, scale, 1e-6f);
        Tensor plain = be->layer_norm_modulate(x, shift, scale, 1e-6f);
        expect_same(fused, plain, "layer_norm_modulate");
        EXPECT_EQ(down(be->linear(fused, w)), down(be->linear(plain, w)));

        Tensor g = up(randn({2, 5, 2 * D}, 1.5f));
        LinearWeight w2 = nvfp4_weight(randn({24, D}, 0.1f));
        expect_same(be->swiglu_for(w2, g), be->swiglu(g), "swiglu");
        EXPECT_EQ(down(be->linear(be->swiglu_for(w2, g), w2)), down(be->linear(be->swiglu(g), w2)));

        LinearWeight dense = dense_bf16_weight(randn({16, D}, 0.1f));
        Tensor not_quantized = be->layer_norm_modulate_for(dense, x, shift, scale, 1e-6f);
        EXPECT_EQ(not_quantized.dtype(), DType::BF16);
        EXPECT_EQ(down(not_quantized), down(plain));
        EXPECT_THROW(be->linear(fused, dense), Error);
    }
    // An MLP row too wide for the one-read kernel's shared memory (96 KB): the two-pass kernel.
    const int64_t wide = 49168;  // a multiple of 16 (NVFP4 blocks), 98336 bytes of BF16
    Tensor g = up(randn({1, 3, 2 * wide}, 1.5f));
    expect_same(be->swiglu_for(nvfp4_weight(randn({16, wide}, 0.1f)), g), be->swiglu(g), "swiglu, wide rows");
}

// The single block's [attn | swiglu(mlp)] producer (swiglu_beside_for): E4M3 codes and per-token scales equal to
// swiglu_into followed by the standalone quantizer, with 16-byte vectors (column counts divisible by 8) and
// without; a layer that does not run in FP8 gets the BF16 row filled in place.
TEST_F(CudaLinearFp8, SwigluBesideAttentionEqualsQuantizingTheRow) {
    for (auto [ca, m] : {std::pair<int64_t, int64_t>{64, 144}, {12, 20}}) {
        const int64_t col = 3 * ca;  // p = [q | k | v | gate | up], as in the single block
        Tensor p = up(randn({2, 7, col + 2 * m}, 1.5f));
        Tensor attn = randn({2, 7, ca + m}, 0.7f);
        Tensor plain = up(attn);
        be->swiglu_into(p, col, m, plain, ca);
        LinearWeight w = nvfp4_weight(randn({24, ca + m}, 0.1f));
        Tensor o = up(attn);
        Tensor fused = be->swiglu_beside_for(w, o, p, col, m);
        ASSERT_EQ(fused.dtype(), DType::F8_E4M3) << "ca " << ca;
        Fp8Activations got = CudaBackend::fp8_parts(fused), want = cuda->quantize_fp8(plain);
        EXPECT_EQ(bytes(got.codes), bytes(want.codes)) << "ca " << ca;
        EXPECT_EQ(bytes(got.scales), bytes(want.scales)) << "ca " << ca;
        EXPECT_EQ(down(be->linear(fused, w)), down(be->linear(plain, w))) << "ca " << ca;

        LinearWeight dense = dense_bf16_weight(randn({16, ca + m}, 0.1f));
        Tensor o2 = up(attn);
        Tensor in_place = be->swiglu_beside_for(dense, o2, p, col, m);
        EXPECT_EQ(in_place.dtype(), DType::BF16);
        EXPECT_EQ(down(in_place), down(plain)) << "ca " << ca;
    }
}

// The single block's attention kept for to_out's input (attention_beside_for): from FP8 q/k buffers the attention's
// E4M3 output goes straight into the row quantizer (swiglu_beside_for), and the codes and scales are byte for byte
// those of FP8 attention into BF16 followed by swiglu_beside_for, for two MLP widths, with the MLP half from its own
// tensor; a layer that does not run in FP8 gets the attention in a BF16 row of its own.
TEST_F(CudaLinearFp8, AttentionBesideInE4m3EqualsAttentionIntoTheRow) {
    const int64_t B = 1, L = 77, H = 2, Dh = 64, Da = H * Dh;
    Tensor cos = up(randn({L, Dh}, 0.7f)), sin = up(randn({L, Dh}, 0.7f));
    Tensor wq = up(randn({Dh}, 0.3f, 1.0f)), wk = up(randn({Dh}, 0.3f, 1.0f));
    for (const int64_t m : {int64_t{144}, int64_t{48}}) {
        Tensor p = up(randn({B, L, 3 * Da + 2 * m}, 1.5f));  // [q | k | v | gate | up]
        Tensor q = normed_qk(p, 0, H, wq, cos, sin), k = normed_qk(p, Da, H, wk, cos, sin);
        ASSERT_EQ(q.dtype(), DType::F8_E4M3) << "FP8 attention is off: no Hopper GPU?";
        LinearWeight w = nvfp4_weight(randn({24, Da + m}, 0.1f));
        Tensor o_two = be->uninitialized({B, L, Da + m});
        be->attention_into(q, k, p, 2 * Da, o_two, 0);
        Tensor want = be->swiglu_beside_for(w, o_two, p, 3 * Da, m);
        be->reset_path_counts();
        Tensor attn = be->attention_beside_for(w, q, k, p, 2 * Da, m);
        ASSERT_EQ(attn.dtype(), DType::F8_E4M3) << "m " << m;
        Tensor mlp = be->uninitialized({B, L, 2 * m});
        be->copy_into(p, 3 * Da, 2 * m, mlp, 0, 0);
        Tensor got = be->swiglu_beside_for(w, attn, mlp, 0, m);
        EXPECT_NE(be->path_summary().find("attention->fp8(cudnn) x1"), std::string::npos) << be->path_summary();
        const Fp8Activations g = CudaBackend::fp8_parts(got), ref = CudaBackend::fp8_parts(want);
        EXPECT_EQ(bytes(g.codes), bytes(ref.codes)) << "m " << m;
        EXPECT_EQ(bytes(g.scales), bytes(ref.scales)) << "m " << m;

        LinearWeight dense = dense_bf16_weight(randn({16, Da + m}, 0.1f));
        Tensor o_plain = be->uninitialized({B, L, Da + m});
        Tensor row = be->attention_beside_for(dense, q, k, p, 2 * Da, m);
        EXPECT_EQ(row.dtype(), DType::BF16);
        Tensor in_place = be->swiglu_beside_for(dense, row, mlp, 0, m);
        EXPECT_EQ(in_place.shape(), (Shape{B, L, Da + m}));
        be->attention_into(q, k, p, 2 * Da, o_plain, 0);
        be->swiglu_into(p, 3 * Da, m, o_plain, Da);
        EXPECT_EQ(down(in_place), down(o_plain)) << "m " << m;
    }
}

// The double block's attention for its two output projections (attention_split_for): from FP8 q/k buffers an FP8
// layer gets the attention's own E4M3 codes, every row with O's one scale, so code * scale rounded to BF16 is the
// BF16 output of the same FP8 attention (attention_into) exactly; a BF16 layer gets those BF16 rows. The image rows
// are a view of the whole codes tensor whose scales it finds where fp8_parts looks. The gated residual from the codes
// agrees with the one from the BF16 rows to FP8 rounding (the rows are not quantized a second time). Two samples
// keep the BF16 rows.
TEST_F(CudaLinearFp8, AttentionSplitHandsTheCodesToTheOutputProjections) {
    const int64_t B = 1, L = 77, Lt = 13, Li = L - Lt, H = 2, Dh = 64, Da = H * Dh, N = 48;
    Tensor cos = up(randn({L, Dh}, 0.7f)), sin = up(randn({L, Dh}, 0.7f));
    Tensor wq = up(randn({Dh}, 0.3f, 1.0f)), wk = up(randn({Dh}, 0.3f, 1.0f));
    Tensor p = up(randn({B, L, 3 * Da}, 1.5f));  // the joint [q | k | v]
    Tensor q = normed_qk(p, 0, H, wq, cos, sin), k = normed_qk(p, Da, H, wk, cos, sin);
    ASSERT_EQ(q.dtype(), DType::F8_E4M3) << "FP8 attention is off: no Hopper GPU?";
    Tensor o = be->uninitialized({B, L, Da});
    be->attention_into(q, k, p, 2 * Da, o, 0);
    const std::vector<float> want = down(o);
    // Rows [begin, begin + rows) of `want` against code * scale of an E4M3 part, rounded to BF16.
    auto expect_codes = [&](const Tensor& part, int64_t begin, int64_t rows, const char* what) {
        ASSERT_EQ(part.dtype(), DType::F8_E4M3) << what;
        ASSERT_EQ(part.shape(), (Shape{B, rows, Da})) << what;
        const Fp8Activations a = CudaBackend::fp8_parts(part);
        const std::vector<uint8_t> codes = bytes(a.codes);
        const std::vector<float> scales = down(a.scales);
        int64_t wrong = 0;
        for (int64_t r = 0; r < rows; ++r) {
            wrong += scales[r] != scales[0];
            for (int64_t c = 0; c < Da; ++c) {
                const float v = bf16_to_f32(f32_to_bf16(e4m3_to_f32(codes[r * Da + c]) * scales[r]));
                wrong += v != want[(begin + r) * Da + c];
            }
        }
        EXPECT_GT(scales[0], 0.0f) << what;
        EXPECT_EQ(wrong, 0) << what;
    };
    auto expect_bf16 = [&](const Tensor& part, int64_t begin, int64_t rows, const char* what) {
        ASSERT_EQ(part.dtype(), DType::BF16) << what;
        const std::vector<float> got = down(part);
        EXPECT_EQ(got, std::vector<float>(want.begin() + begin * Da, want.begin() + (begin + rows) * Da)) << what;
    };
    const LinearWeight fp8 = nvfp4_weight(randn({N, Da}, 0.1f)), bf16 = dense_bf16_weight(randn({N, Da}, 0.1f));

    be->reset_path_counts();
    std::array<Tensor, 2> split = be->attention_split_for(bf16, fp8, q, k, p, 2 * Da, Lt);
    EXPECT_NE(be->path_summary().find("attention->fp8(cudnn) x1"), std::string::npos) << be->path_summary();
    expect_bf16(split[0], 0, Lt, "text rows for a BF16 layer");
    expect_codes(split[1], Lt, Li, "image rows for an FP8 layer");
    // x += gate * to_out(rows): from the codes as they are against from the BF16 rows, quantized per row.
    Tensor x = randn({B, Li, N}), gate = randn({B, N}, 0.7f);
    Tensor from_codes = up(x), from_rows = up(x);
    be->linear_gated_residual(from_codes, up(gate), split[1], fp8);
    be->linear_gated_residual(from_rows, up(gate), be->slice(o, 1, Lt, Li), fp8);
    EXPECT_LE(rel_error(down(from_codes), down(from_rows)), 3e-2);

    split = be->attention_split_for(fp8, fp8, q, k, p, 2 * Da, Lt);
    expect_codes(split[0], 0, Lt, "text rows for an FP8 layer");
    expect_codes(split[1], Lt, Li, "image rows for an FP8 layer");
    split = be->attention_split_for(fp8, bf16, q, k, p, 2 * Da, Lt);  // a BF16 image layer: BF16 rows for both
    expect_bf16(split[0], 0, Lt, "text rows, BF16 image layer");
    expect_bf16(split[1], Lt, Li, "image rows, BF16 image layer");

    // Two samples: their image rows are not one range of the codes, so both parts are BF16 slices of attention_into.
    Tensor p2 = up(randn({2, L, 3 * Da}, 1.5f));
    Tensor q2 = normed_qk(p2, 0, H, wq, cos, sin), k2 = normed_qk(p2, Da, H, wk, cos, sin);
    Tensor o2 = be->uninitialized({2, L, Da});
    be->attention_into(q2, k2, p2, 2 * Da, o2, 0);
    split = be->attention_split_for(fp8, fp8, q2, k2, p2, 2 * Da, Lt);
    ASSERT_EQ(split[1].dtype(), DType::BF16);
    EXPECT_EQ(split[0].shape(), (Shape{2, Lt, Da}));
    EXPECT_EQ(split[1].shape(), (Shape{2, Li, Da}));
    EXPECT_EQ(down(split[0]), down(be->slice(o2, 1, 0, Lt)));
    EXPECT_EQ(down(split[1]), down(be->slice(o2, 1, Lt, Li)));
}
#endif

// x += gate * linear(in, w) with the gate folded into the FP8 GEMM's channel scales and x accumulated in its
// epilogue: the same as the two ops up to the BF16 rounding of the product they keep; B > 1 takes the two ops.
TEST_F(CudaLinearFp8, GatedResidualInTheGemmEpilogue) {
    for (int64_t B : {1, 2}) {
        const int64_t L = 37, K = 144, N = 96;
        LinearWeight w = nvfp4_weight(randn({N, K}, 0.1f));
        Tensor x = randn({B, L, N}), gate = randn({B, N}, 0.7f), in = randn({B, L, K});
        Tensor fused = up(x), plain = up(x);
        be->linear_gated_residual(fused, up(gate), up(in), w);
        be->gated_residual(plain, up(gate), be->linear(up(in), w));
        std::vector<float> got = down(fused), want = down(plain);
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, want), 4e-3) << "B " << B;
        // The update is really there: x alone is far off.
        EXPECT_GT(rel_error(got, x.to_vector()), 1e-2) << "B " << B;
        // From a fused producer's E4M3 activations too.
        Tensor shift = up(randn({B, K}, 0.3f)), scale = up(randn({B, K}, 0.3f));
        Tensor fused2 = up(x), plain2 = up(x);
        be->linear_gated_residual(fused2, up(gate), be->layer_norm_modulate_for(w, up(in), shift, scale, 1e-6f), w);
        be->gated_residual(plain2, up(gate), be->linear(be->layer_norm_modulate(up(in), shift, scale, 1e-6f), w));
        EXPECT_LE(rel_error(down(fused2), down(plain2)), 4e-3) << "B " << B;
    }
}

TEST(CudaBackendOptions, RejectsUnsupportedRequests) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible";
    BackendOptions o;
    o.device = "cuda";
    o.precision = "fp4";  // refused before Blackwell (compute capability 10.x / 12.x)
    cudaDeviceProp prop{};
    ASSERT_EQ(cudaGetDeviceProperties(&prop, 0), cudaSuccess);
    if (prop.major != 10 && prop.major != 12) EXPECT_THROW(make_cuda_backend(o), Error);
    o.precision = "int3";
    EXPECT_THROW(make_cuda_backend(o), Error);
    o.precision = "";
    o.nvfp4_activations = Nvfp4Activations::w4a4;
    EXPECT_THROW(make_cuda_backend(o), Error);
    o.nvfp4_activations = Nvfp4Activations::w4a16;
    o.device = "cuda:99";
    EXPECT_THROW(make_cuda_backend(o), Error);
    o.device = "cuda";
    o.fp8_accumulation = "fp16";  // fast or precise
    EXPECT_THROW(make_cuda_backend(o), Error);
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

}  // namespace
}  // namespace flux2::test
