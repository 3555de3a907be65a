// CUDA elementwise and layout ops against fp64 CPU references on random BF16 inputs, with odd sizes that take the
// scalar (non-vectorized) kernel paths.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "cuda_test_util.h"

namespace flux2::test {
namespace {

constexpr double kTol = 5e-3;  // BF16 output rounding is ~1e-3 relative

double silu_ref(double v) { return v / (1.0 + std::exp(-v)); }

class CudaElementwise : public CudaTest {};

TEST_F(CudaElementwise, UploadDownloadRoundsToBf16) {
    Tensor x = Tensor::zeros({3, 5});
    for (int i = 0; i < 15; ++i) x.f32()[i] = 0.1f * i - 0.73f;
    std::vector<float> got = down(up(x));
    for (int i = 0; i < 15; ++i) EXPECT_EQ(got[i], round_bf16(x.f32()[i])) << i;
    std::vector<float> z = down(be->zeros({7, 3}));
    for (float v : z) EXPECT_EQ(v, 0.0f);
}

TEST_F(CudaElementwise, Silu) {
    for (Shape s : {Shape{4, 1024}, Shape{3, 37}}) {
        Tensor x = randn(s, 3.0f);
        std::vector<double> ref(x.numel());
        for (int64_t i = 0; i < x.numel(); ++i) ref[i] = silu_ref(x.f32()[i]);
        std::vector<float> got = down(be->silu(up(x)));
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), kTol) << shape_str(s);
    }
}

TEST_F(CudaElementwise, Swiglu) {
    for (Shape s : {Shape{2, 5, 2 * 96}, Shape{7, 2 * 13}}) {
        Tensor x = randn(s, 2.0f);
        const int64_t m = s.back() / 2, rows = x.numel() / (2 * m);
        std::vector<double> ref(rows * m);
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t j = 0; j < m; ++j)
                ref[r * m + j] = silu_ref(x.f32()[r * 2 * m + j]) * x.f32()[r * 2 * m + m + j];
        Tensor y = be->swiglu(up(x));
        Shape want = s;
        want.back() = m;
        ASSERT_EQ(y.shape(), want);
        std::vector<float> got = down(y);
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), kTol) << shape_str(s);
    }
    EXPECT_THROW(be->swiglu(up(randn({2, 7}))), Error);
}

TEST_F(CudaElementwise, AddMul) {
    for (Shape s : {Shape{8, 256}, Shape{3, 11}}) {
        Tensor a = randn(s), b = randn(s);
        std::vector<double> sum(a.numel()), prod(a.numel());
        for (int64_t i = 0; i < a.numel(); ++i) {
            sum[i] = double(a.f32()[i]) + b.f32()[i];
            prod[i] = double(a.f32()[i]) * b.f32()[i];
        }
        Tensor da = up(a), db = up(b);
        EXPECT_LE(rel_error(down(be->add(da, db)), to_float(sum)), kTol) << shape_str(s);
        EXPECT_LE(rel_error(down(be->mul(da, db)), to_float(prod)), kTol) << shape_str(s);
    }
    EXPECT_THROW(be->add(up(randn({2, 3})), up(randn({3, 2}))), Error);
}

TEST_F(CudaElementwise, GatedResidualInPlace) {
    for (Shape s : {Shape{2, 9, 64}, Shape{2, 5, 13}}) {
        Tensor x = randn(s), y = randn(s), gate = randn({s[0], s[2]}, 0.5f);
        const int64_t L = s[1], D = s[2];
        std::vector<double> ref(x.numel());
        for (int64_t i = 0; i < x.numel(); ++i) {
            const int64_t r = i / D, c = i % D;
            ref[i] = x.f32()[i] + double(gate.f32()[(r / L) * D + c]) * y.f32()[i];
        }
        Tensor dx = up(x);
        be->gated_residual(dx, up(gate), up(y));
        std::vector<float> got = down(dx);
        ASSERT_TRUE(all_finite(got));
        EXPECT_LE(rel_error(got, to_float(ref)), kTol) << shape_str(s);
    }
}

TEST_F(CudaElementwise, ConcatAndSliceAreExactCopies) {
    Tensor a = randn({2, 3, 4, 5}), b = randn({2, 3, 6, 5});
    Tensor c = be->concat(up(a), up(b), 2);
    ASSERT_EQ(c.shape(), (Shape{2, 3, 10, 5}));
    std::vector<float> got = down(c);
    for (int64_t o = 0; o < 6; ++o) {
        for (int64_t i = 0; i < 20; ++i) EXPECT_EQ(got[o * 50 + i], a.f32()[o * 20 + i]);
        for (int64_t i = 0; i < 30; ++i) EXPECT_EQ(got[o * 50 + 20 + i], b.f32()[o * 30 + i]);
    }
    // Slices along the first, a middle and the last axis.
    Tensor dc = up(randn({5, 7, 9}));
    std::vector<float> full = down(dc);
    struct Case {
        int axis;
        int64_t begin, count;
    };
    for (Case k : {Case{0, 1, 3}, Case{1, 2, 4}, Case{-1, 5, 4}, Case{2, 0, 9}}) {
        Tensor s = be->slice(dc, k.axis, k.begin, k.count);
        std::vector<float> v = down(s);
        const int ax = k.axis < 0 ? 2 : k.axis;
        int64_t n = 0;
        for (int64_t i = 0; i < 5; ++i)
            for (int64_t j = 0; j < 7; ++j)
                for (int64_t l = 0; l < 9; ++l) {
                    const int64_t idx[3] = {i, j, l};
                    if (idx[ax] < k.begin || idx[ax] >= k.begin + k.count) continue;
                    ASSERT_EQ(v[n++], full[(i * 7 + j) * 9 + l]) << "axis " << k.axis;
                }
        EXPECT_EQ(n, static_cast<int64_t>(v.size()));
    }
    EXPECT_THROW(be->slice(dc, 1, 5, 3), Error);
    EXPECT_THROW(be->concat(dc, up(randn({5, 6, 8})), 1), Error);
}

// The sampler's state on the device: the Euler update (with and without true CFG) gives the CPU backend's bits, and
// state_into rounds the F32 state to BF16 as an upload does. Odd sizes take the tail of the grid.
TEST_F(CudaElementwise, EulerUpdateMatchesTheCpuBitForBit) {
    CpuBackend cpu(BackendOptions{});
    for (Shape s : {Shape{2, 64, 128}, Shape{1, 7, 3}}) {
        Tensor x = randn(s, 1.0f), v = randn(s, 2.0f), v_neg = randn(s, 2.0f);
        for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += 1e-3f * static_cast<float>(i % 7);  // not BF16 values
        for (bool guided : {false, true}) {
            Tensor want = x.clone();
            cpu.euler_update(want, v, guided ? &v_neg : nullptr, 4.0f, -0.0731f);
            Tensor state = be->upload_state(x);
            ASSERT_EQ(state.dtype(), DType::F32);
            const Tensor dv = up(v), dn = up(v_neg);
            be->euler_update(state, dv, guided ? &dn : nullptr, 4.0f, -0.0731f);
            EXPECT_EQ(be->download(state).to_vector(), want.to_vector()) << shape_str(s) << (guided ? " CFG" : "");
            Tensor activations = be->uninitialized(s);
            be->state_into(state, activations);
            const std::vector<float> got = down(activations), exact = want.to_vector();
            for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], round_bf16(exact[i])) << i;
        }
    }
    Tensor state = be->upload_state(randn({2, 8}));
    EXPECT_THROW(be->euler_update(state, up(randn({2, 4})), nullptr, 1.0f, -0.5f), Error);  // shapes differ
    Tensor bf16_state = up(randn({2, 8}));
    EXPECT_THROW(be->euler_update(bf16_state, up(randn({2, 8})), nullptr, 1.0f, -0.5f), Error);  // not F32
    Tensor host = randn({2, 8});
    EXPECT_THROW(be->euler_update(host, up(randn({2, 8})), nullptr, 1.0f, -0.5f), Error);  // not on the device
}

TEST_F(CudaElementwise, RejectsHostTensors) {
    Tensor host = randn({2, 8});
    EXPECT_THROW(be->silu(host), Error);
}

}  // namespace
}  // namespace flux2::test
