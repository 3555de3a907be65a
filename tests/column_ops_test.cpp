// The column-range ops (Backend::*_into) on the CPU reference backend against the slice/concat compositions they
// replace, and concat_rows against the dequantized parts.
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "core/error.h"
#include "quant/linear_weight.h"
#include "quant/nvfp4_quantizer.h"
#include "test_util.h"

namespace flux2::test {
namespace {

class ColumnOpsTest : public ::testing::Test {
protected:
    Tensor randn(const Shape& shape) {
        std::normal_distribution<float> dist(0.0f, 1.0f);
        Tensor t = Tensor::zeros(shape);
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = dist(rng);
        return t;
    }
    std::unique_ptr<Backend> be = make_backend(BackendOptions{});
    std::mt19937 rng{7};
};

constexpr int64_t B = 2, L = 5, H = 3, Dh = 8, D = H * Dh, M = 16;

TEST_F(ColumnOpsTest, RmsNormRopeIntoMatchesSliceThenConcat) {
    Tensor x = randn({B, L, 3 * D}), w = randn({Dh}), cos = randn({L, Dh}), sin = randn({L, Dh});
    Tensor prefix = randn({B, 2, H, Dh});
    Tensor out = be->uninitialized({B, 2 + L, H, Dh});
    be->copy_into(prefix.reshape({B, 2, D}), 0, D, out, 0, 0);
    be->rms_norm_rope_into(x, D, w, cos, sin, 1e-6f, out, 2);
    Tensor heads = be->slice(x, 2, D, D).reshape({B, L, H, Dh});
    Tensor ref = be->concat(prefix, be->rms_norm_rope(heads, w, cos, sin, 1e-6f), 1);
    EXPECT_EQ(out.shape(), ref.shape());
    EXPECT_EQ(rel_error(out.to_vector(), ref.to_vector()), 0.0);
}

TEST_F(ColumnOpsTest, SwigluAndAttentionIntoBuildTheConcatenatedInput) {
    Tensor p = randn({B, L, 3 * D + 2 * M}), q = randn({B, L, H, Dh}), k = randn({B, L, H, Dh});
    Tensor out = be->uninitialized({B, L, D + M});
    be->attention_into(q, k, p, 2 * D, out, 0);
    be->swiglu_into(p, 3 * D, M, out, D);
    Tensor attn = be->attention(q, k, be->slice(p, 2, 2 * D, D).reshape({B, L, H, Dh}));
    Tensor ref = be->concat(attn, be->swiglu(be->slice(p, 2, 3 * D, 2 * M)), 2);
    EXPECT_EQ(rel_error(out.to_vector(), ref.to_vector()), 0.0);
}

TEST_F(ColumnOpsTest, RangesOutsideTheTensorsAreRefused) {
    Tensor x = randn({B, L, D}), out = be->uninitialized({B, L, D});
    EXPECT_THROW(be->copy_into(x, 8, D, out, 0, 0), Error);
    EXPECT_THROW(be->copy_into(x, 0, D, out, 1, 0), Error);
    EXPECT_THROW(be->swiglu_into(x, 0, D, out, 0), Error);
}

LinearWeight nvfp4_weight(const Tensor& w, const std::string& name) {
    LinearWeight lw;
    lw.name = name;
    lw.out_features = w.dim(0);
    lw.in_features = w.dim(1);
    lw.format = WeightFormat::nvfp4;
    lw.nvfp4 = quantize_nvfp4_weight(w.f32(), w.dim(0), w.dim(1));
    return lw;
}

TEST_F(ColumnOpsTest, ConcatRowsIsExactWhenScalesAgree) {
    LinearWeight a = nvfp4_weight(randn({6, 32}), "a"), b = nvfp4_weight(randn({4, 32}), "b");
    b.nvfp4.weight_scale_2 = a.nvfp4.weight_scale_2;  // as for Q/K/V split from one fused tensor
    ASSERT_TRUE(can_concat_rows({&a, &b}));
    LinearWeight c = concat_rows({&a, &b}, "ab");
    EXPECT_EQ(c.out_features, 10);
    std::vector<float> ref = dequantize(a), tail = dequantize(b);
    ref.insert(ref.end(), tail.begin(), tail.end());
    EXPECT_EQ(dequantize(c), ref);

    LinearWeight d = nvfp4_weight(randn({4, 32}), "d");
    d.nvfp4.weight_scale_2 = a.nvfp4.weight_scale_2 * 2.0f;
    EXPECT_FALSE(can_concat_rows({&a, &d}));
    EXPECT_THROW(concat_rows({&a, &d}, "ad"), Error);
    LinearWeight e = nvfp4_weight(randn({4, 16}), "e");
    EXPECT_FALSE(can_concat_rows({&a, &e}));
}

}  // namespace
}  // namespace flux2::test
