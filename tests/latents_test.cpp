#include "pipeline/latents.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "core/error.h"

namespace flux2 {
namespace {

Tensor iota(const Shape& shape) {
    std::vector<float> v(shape_numel(shape));
    std::iota(v.begin(), v.end(), 0.0f);
    return Tensor::from_f32(shape, v);
}

TEST(Latents, PackIsTokenMajor) {
    const Tensor x = iota({2, 3, 2, 4});  // B, C, h, w
    const Tensor t = pack_latents(x);
    ASSERT_EQ(t.shape(), (Shape{2, 8, 3}));
    const float* p = t.f32();
    for (int b = 0; b < 2; ++b)
        for (int row = 0; row < 2; ++row)
            for (int col = 0; col < 4; ++col)
                for (int c = 0; c < 3; ++c)
                    ASSERT_EQ(p[(b * 8 + row * 4 + col) * 3 + c], x.f32()[((b * 3 + c) * 2 + row) * 4 + col]);
    EXPECT_EQ(unpack_latents(t, 2, 4).to_vector(), x.to_vector());
    EXPECT_THROW(unpack_latents(t, 3, 3), Error);
}

TEST(Latents, PatchifyChannelOrder) {
    const Tensor z = iota({1, 2, 4, 6});  // C = 2, 4x6 -> 8 channels on 2x3
    const Tensor x = patchify_latents(z);
    ASSERT_EQ(x.shape(), (Shape{1, 8, 2, 3}));
    for (int c = 0; c < 2; ++c)
        for (int py = 0; py < 2; ++py)
            for (int px = 0; px < 2; ++px)
                for (int y = 0; y < 2; ++y)
                    for (int xx = 0; xx < 3; ++xx)
                        ASSERT_EQ(x.f32()[((c * 4 + py * 2 + px) * 2 + y) * 3 + xx],
                                  z.f32()[(c * 4 + 2 * y + py) * 6 + 2 * xx + px]);
    EXPECT_EQ(unpatchify_latents(x).to_vector(), z.to_vector());
    EXPECT_THROW(patchify_latents(iota({1, 2, 3, 4})), Error);
    EXPECT_THROW(unpatchify_latents(iota({1, 6, 2, 2})), Error);
}

TEST(Latents, PositionIds) {
    const Tensor img = image_position_ids(2, 3);
    ASSERT_EQ(img.shape(), (Shape{6, 4}));
    EXPECT_EQ(img.to_vector(), (std::vector<float>{0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0,  //
                                                   0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 2, 0}));
    const Tensor txt = text_position_ids(3);
    EXPECT_EQ(txt.to_vector(), (std::vector<float>{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2}));
    const Tensor ref = reference_position_ids({{1, 2}, {2, 1}});
    EXPECT_EQ(ref.to_vector(), (std::vector<float>{10, 0, 0, 0, 10, 0, 1, 0, 20, 0, 0, 0, 20, 1, 0, 0}));
}

TEST(Latents, UnpackWithIdsScattersByPosition) {
    const Tensor x = iota({1, 3, 2, 3});
    const Tensor tokens = pack_latents(x);
    EXPECT_EQ(unpack_latents_with_ids(tokens, image_position_ids(2, 3)).to_vector(), x.to_vector());
    // Reverse the token order together with the ids: the scatter must undo it.
    Tensor rev_tokens = Tensor::zeros(tokens.shape());
    Tensor rev_ids = Tensor::zeros({6, 4});
    const Tensor ids = image_position_ids(2, 3);
    for (int i = 0; i < 6; ++i) {
        for (int c = 0; c < 3; ++c) rev_tokens.f32()[i * 3 + c] = tokens.f32()[(5 - i) * 3 + c];
        for (int k = 0; k < 4; ++k) rev_ids.f32()[i * 4 + k] = ids.f32()[(5 - i) * 4 + k];
    }
    EXPECT_EQ(unpack_latents_with_ids(rev_tokens, rev_ids).to_vector(), x.to_vector());
    Tensor dup = ids.clone();
    dup.f32()[5 * 4 + 2] = 1;  // token 5 now collides with token 4
    EXPECT_THROW(unpack_latents_with_ids(tokens, dup), Error);
}

TEST(Latents, BatchNormRoundTrip) {
    std::vector<float> mean(128), var(128);
    for (int c = 0; c < 128; ++c) {
        mean[c] = 0.01f * c - 0.5f;
        var[c] = 0.5f + 0.008f * c;
    }
    const LatentBatchNorm bn{Tensor::from_f32({128}, mean), Tensor::from_f32({128}, var), 1e-4f};
    Tensor x = iota({1, 128, 2, 2});
    const Tensor original = x.clone();
    batch_norm_normalize(x, bn);
    const float expected = (original.f32()[7 * 4 + 1] - mean[7]) / std::sqrt(var[7] + 1e-4f);
    EXPECT_EQ(x.f32()[7 * 4 + 1], expected);
    batch_norm_denormalize(x, bn);
    for (int64_t i = 0; i < x.numel(); ++i) ASSERT_NEAR(x.f32()[i], original.f32()[i], 1e-4f * (1 + i));
    Tensor wrong = Tensor::zeros({1, 32, 2, 2});
    EXPECT_THROW(batch_norm_normalize(wrong, bn), Error);
}

}  // namespace
}  // namespace flux2
