// Tiled VAE decode/encode: the tile layout (borders, odd sizes), the blend (exact for a function that commutes with
// cropping), the automatic threshold, and tiled against untiled passes of the random tiny VAE.
#include "pipeline/vae_tiling.h"

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "core/error.h"
#include "core/normal_rng.h"
#include "test_util.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace flux2 {
namespace {

Tensor normal_tensor(const Shape& shape, uint64_t seed, float stddev = 1.0f) {
    Tensor t = Tensor::zeros(shape);
    fill_normal(t.f32(), t.numel(), seed, 0.0f, stddev);
    return t;
}

TEST(VaeTiling, TileStartsCoverEveryLengthWithFullSizeTiles) {
    for (const auto& [tile, overlap] : {std::pair<int64_t, int64_t>{64, 16}, {32, 8}, {7, 3}, {5, 0}}) {
        for (int64_t n = 1; n <= 300; ++n) {
            const std::vector<int64_t> s = tile_starts(n, tile, overlap);
            const int64_t len = std::min(n, tile);
            ASSERT_EQ(s.front(), 0) << n;
            ASSERT_EQ(s.back() + len, n) << "the last tile ends at the border, n " << n;
            const size_t fewest = n <= tile ? 1 : (n - tile + (tile - overlap) - 1) / (tile - overlap) + 1;
            ASSERT_EQ(s.size(), fewest) << n;
            for (size_t i = 1; i < s.size(); ++i) {
                ASSERT_GT(s[i], s[i - 1]) << n;
                ASSERT_GE(s[i - 1] + len - s[i], overlap) << "overlap of tiles " << i - 1 << ", " << i << ", n " << n;
            }
        }
    }
    EXPECT_THROW(tile_starts(10, 8, 8), Error);
    EXPECT_THROW(tile_starts(0, 8, 2), Error);
}

// Nearest upsampling by `s` then a channel mix: it commutes with cropping, so tiling must reproduce it exactly,
// including at the image border and for sizes that are no multiple of the stride.
Tensor upsample_mix(const Tensor& x, int64_t s) {
    const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
    Tensor out = Tensor::zeros({B, 2, H * s, W * s});
    for (int64_t b = 0; b < B; ++b)
        for (int64_t o = 0; o < 2; ++o)
            for (int64_t y = 0; y < H * s; ++y)
                for (int64_t xx = 0; xx < W * s; ++xx) {
                    float v = 0;
                    for (int64_t c = 0; c < C; ++c)
                        v += (o + 1.0f) * (c + 1.0f) * x.f32()[((b * C + c) * H + y / s) * W + xx / s];
                    out.f32()[((b * 2 + o) * H * s + y) * W * s + xx] = v;
                }
    return out;
}

Tensor average_pool(const Tensor& x, int64_t s) {
    const int64_t B = x.dim(0), C = x.dim(1), H = x.dim(2) / s, W = x.dim(3) / s;
    Tensor out = Tensor::zeros({B, C, H, W});
    for (int64_t p = 0; p < B * C; ++p)
        for (int64_t y = 0; y < H * s; ++y)
            for (int64_t xx = 0; xx < W * s; ++xx)
                out.f32()[(p * H + y / s) * W + xx / s] += x.f32()[(p * H * s + y) * W * s + xx] / float(s * s);
    return out;
}

TEST(VaeTiling, BlendIsExactForCropInvariantFunctions) {
    VaeTiling t;
    t.tile = 9;
    t.overlap = 3;
    for (const auto& [h, w] : {std::pair<int64_t, int64_t>{37, 23}, {9, 31}, {10, 10}, {5, 4}}) {
        const Tensor z = normal_tensor({2, 3, h, w}, 7);
        const Tensor up = run_tiled(z, h, w, 1, 4, t, [](const Tensor& x) { return upsample_mix(x, 4); });
        EXPECT_LE(test::rel_error(up.to_vector(), upsample_mix(z, 4).to_vector()), 1e-6) << h << "x" << w;

        const Tensor img = normal_tensor({2, 3, h * 4, w * 4}, 8);
        const Tensor down = run_tiled(img, h, w, 4, 1, t, [](const Tensor& x) { return average_pool(x, 4); });
        EXPECT_LE(test::rel_error(down.to_vector(), average_pool(img, 4).to_vector()), 1e-6) << h << "x" << w;
    }
}

TEST(VaeTiling, AutomaticAboveThreshold) {
    const VaeTiling t;
    EXPECT_FALSE(t.applies(1024, 1024));
    EXPECT_FALSE(t.applies(1536, 1536));
    EXPECT_TRUE(t.applies(1536, 1552));
    EXPECT_TRUE(t.applies(2048, 2048));
    VaeTiling forced;
    forced.force = true;
    EXPECT_TRUE(forced.applies(64, 64));
    VaeTiling bad;
    bad.overlap = bad.tile;
    EXPECT_THROW(bad.validate(), Error);
}

class VaeTilingTinyVae : public ::testing::Test {
protected:
    std::unique_ptr<Backend> backend = make_backend(BackendOptions{});
    Flux2Vae vae = Flux2Vae::load(test::data_path("tiny-vae"), *backend);
};

// Below the threshold vae_decode is the plain pass, bit for bit. Forced, up to the lockstep size (128x128 latent
// positions, 1024²) it is the plain pass too, decode and encode: tiles there would have to run in lockstep, which
// costs more time and, on the CPU, more memory than the whole pass; above it, tiles, each on its own.
TEST_F(VaeTilingTinyVae, BelowThresholdIsUntiled) {
    const Tensor z = normal_tensor({1, 32, 12, 10}, 1);
    const Tensor plain = vae.decode(z);
    EXPECT_EQ(vae_decode(vae, z, VaeTiling{}).to_vector(), plain.to_vector());
    VaeTiling forced;
    forced.force = true;
    EXPECT_EQ(vae_decode(vae, z, forced).to_vector(), plain.to_vector());
    const Tensor wide = normal_tensor({1, 32, 9, 70}, 2);
    const Tensor image = normal_tensor({1, 3, 8 * 9, 8 * 70}, 3, 0.5f);
    EXPECT_EQ(vae_decode(vae, wide, forced).to_vector(), vae.decode(wide).to_vector());
    EXPECT_EQ(vae_encode_mean(vae, image, forced).to_vector(), vae.encode_mean(image).to_vector());
    VaeTiling small = forced;
    small.whole_head_max_positions = 8 * 64;  // 9x70 is above it now: 1x2 tiles, each on its own
    EXPECT_NE(vae_decode(vae, wide, small).to_vector(), vae.decode(wide).to_vector());
    EXPECT_NE(vae_encode_mean(vae, image, small).to_vector(), vae.encode_mean(image).to_vector());
}

// The lockstep passes with one crop owning everything are the plain ones. The decoder's tail with one crop owning
// the whole latent is decode_up: the host GroupNorm sums in the CPU
// backend's order, so bit for bit; and the two halves make decode. Owned regions outside their crop are refused.
TEST_F(VaeTilingTinyVae, TailTogetherWithOneCropIsDecodeUp) {
    const Tensor z = normal_tensor({1, 32, 9, 13}, 3);
    const Tensor mid = vae.decode_mid(z);
    EXPECT_EQ(vae.decode_up(mid).to_vector(), vae.decode(z).to_vector());
    const std::vector<Tensor> together = vae.decode_up_together({mid}, {OwnedRegion{0, 9, 0, 13}});
    ASSERT_EQ(together.size(), 1u);
    EXPECT_EQ(together[0].to_vector(), vae.decode_up(mid).to_vector());
    EXPECT_THROW(vae.decode_up_together({mid}, {OwnedRegion{0, 10, 0, 13}}), Error);
    EXPECT_THROW(vae.decode_up_together({mid, mid}, {OwnedRegion{0, 9, 0, 13}}), Error);
    EXPECT_THROW(vae.decode_up(z), Error);  // latents are not the mid block's output

    // The encoder's halves likewise: one crop owning the whole image is encode_mean, bit for bit.
    const Tensor image = normal_tensor({1, 3, 8 * 9, 8 * 13}, 4, 0.5f);
    const std::vector<Tensor> features = vae.encode_down_together({image}, {OwnedRegion{0, 9, 0, 13}});
    ASSERT_EQ(features.size(), 1u);
    EXPECT_EQ(vae.encode_mean_from_features(features[0]).to_vector(), vae.encode_mean(image).to_vector());
    EXPECT_THROW(vae.encode_down_together({image}, {OwnedRegion{0, 9, 0, 14}}), Error);
    EXPECT_THROW(vae.encode_mean_from_features(image), Error);
}

// The same on a GPU: the sizes where tiles would run in lockstep (up to 128x128 latent positions) decode and encode
// whole, even forced, bit for bit the untiled passes; above that size, tiles.
TEST(CudaVaeTiling, LockstepSizesRunWhole) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    BackendOptions options;
    options.device = "cuda";
    auto backend = make_backend(options);
    const Flux2Vae vae = Flux2Vae::load(test::data_path("tiny-vae"), *backend);
    VaeTiling forced;
    forced.force = true;
    const Tensor z = normal_tensor({1, 32, 69, 91}, 2);
    EXPECT_EQ(vae_decode(vae, z, forced).to_vector(), vae.decode(z).to_vector());
    const Tensor image = normal_tensor({1, 3, 8 * 77, 8 * 90}, 3, 0.5f);
    EXPECT_EQ(vae_encode_mean(vae, image, forced).to_vector(), vae.encode_mean(image).to_vector());
    VaeTiling small = forced;
    small.whole_head_max_positions = 64 * 64;  // 69x91 is above it now: tiles, each on its own
    EXPECT_NE(vae_decode(vae, z, small).to_vector(), vae.decode(z).to_vector());
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// How far the lockstep passes read, from the tiny VAE's layout (4 stages; the decoder 2 resnets a stage, the
// encoder 1): decode 4 + 0.5 + 2 + 0.25 + 1 + 0.125 + 0.5 + 0.125 latent pixels (each 3x3 convolution one pixel
// of its resolution), encode 0.125 + (0.25 + 0.25) + (0.5 + 0.5) + (1 + 1) + 2 (stride-2 convolutions two). FLUX.2's
// decoder (3 resnets a stage) reads 12.25, so its lockstep tiles overlap by 28 latent pixels (224 px).
TEST_F(VaeTilingTinyVae, LockstepLayoutCoversTheReach) {
    EXPECT_DOUBLE_EQ(vae.decode_tail_reach(), 8.5);
    EXPECT_DOUBLE_EQ(vae.encode_down_reach(), 5.625);
    const VaeTiling flux2 = lockstep_layout(VaeTiling{}, 12.25);
    EXPECT_EQ(flux2.overlap, 28);
    EXPECT_EQ(flux2.tile, 64);
    VaeTiling small;
    small.tile = 24;
    small.overlap = 4;
    const VaeTiling grown = lockstep_layout(small, 8.5);
    EXPECT_EQ(grown.overlap, 20);
    EXPECT_EQ(grown.tile, 40);
}

// 69x91 latents in tiles, with odd extents. The tiny VAE is a worst case for tiling: its GroupNorm groups hold 1-2
// channels (FLUX.2's hold 4-16), so a tile's statistics are noisy estimates of the image's, and its random
// attention averages nearly uniformly over whatever it sees. With each tile running the whole decoder (as above
// 1024²) the error comes from that, not from the seams: it does not move when the overlap doubles (3.53e-2 at
// overlaps 16 and 32) and grows as tiles shrink (7.9e-2 at 48). At this size the head (conv_in, the mid block and
// its attention) runs on the whole latent and the tail's tiles in lockstep, every GroupNorm with the whole image's
// statistics, and each tile gives only what lies beyond its convolutions' reach from its inner edges: the untiled
// decode up to float rounding (1.7e-6; it was 6.66e-3 when the overlaps were blended, zero padding and all), with
// the default tiles (2x2 of 64) and with tiles of 24 asked for (grown to 40 with overlaps of 20: 3x3), where a
// reach counted short would show. Bounds: measured x 1.3, and 1e-5 for float rounding.
TEST_F(VaeTilingTinyVae, DecodeMatchesUntiled) {
    const Tensor z = normal_tensor({1, 32, 69, 91}, 2);
    const Tensor plain = vae.decode(z);
    VaeTiling per_tile, small;
    per_tile.whole_head_max_positions = 0;
    small.tile = 24;
    small.overlap = 4;
    const Tensor tiled = decode_tiled(vae, z, VaeTiling{}), tiled_small = decode_tiled(vae, z, small);
    const Tensor tiled_head = decode_tiled(vae, z, per_tile);
    ASSERT_EQ(tiled.shape(), plain.shape());
    const double err = test::rel_error(tiled.to_vector(), plain.to_vector());
    const double err_small = test::rel_error(tiled_small.to_vector(), plain.to_vector());
    const double err_head = test::rel_error(tiled_head.to_vector(), plain.to_vector());
    std::printf(
        "tiled decode, 69x91 latents: relative error %.2e in lockstep (2x2 tiles of 64), %.2e (3x3 of 40), %.2e with "
        "each tile on its own\n",
        err, err_small, err_head);
    EXPECT_LE(err, 1e-5);
    EXPECT_LE(err_small, 1e-5);
    EXPECT_LE(err_head, 4.6e-2);
}

// Encode: the down path's tiles in lockstep with whole-image statistics, stitched beyond their reach, the mid block
// on the whole features: the untiled encode up to float rounding (1.25e-6; 6.54e-3 when blended), against every
// tile encoded on its own (2.27e-2). Bounds: 1e-5, measured x 1.3.
TEST_F(VaeTilingTinyVae, EncodeMatchesUntiled) {
    const Tensor image = normal_tensor({1, 3, 8 * 77, 8 * 90}, 3, 0.5f);
    VaeTiling per_tile;
    per_tile.whole_head_max_positions = 0;
    const Tensor tiled = encode_mean_tiled(vae, image, VaeTiling{}), alone = encode_mean_tiled(vae, image, per_tile);
    const Tensor plain = vae.encode_mean(image);
    ASSERT_EQ(tiled.shape(), plain.shape());
    const double err = test::rel_error(tiled.to_vector(), plain.to_vector());
    const double err_alone = test::rel_error(alone.to_vector(), plain.to_vector());
    std::printf(
        "tiled encode, 616x720 pixels in 2x2 tiles of 512: relative error %.2e in lockstep (%.2e with each tile on "
        "its own)\n",
        err, err_alone);
    EXPECT_LE(err, 1e-5);
    EXPECT_LE(err_alone, 3e-2);
}

TEST_F(VaeTilingTinyVae, RejectsMalformedInput) {
    EXPECT_THROW(encode_mean_tiled(vae, Tensor::zeros({1, 3, 20, 16}), VaeTiling{}), Error);
    EXPECT_THROW(decode_tiled(vae, Tensor::zeros({32, 8, 8}), VaeTiling{}), Error);
}

}  // namespace
}  // namespace flux2
