#include "pipeline/image_ops.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"

namespace flux2 {
namespace {

Image pattern(int w, int h) {
    Image img = Image::blank(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = img.pixel(x, y);
            p[0] = static_cast<uint8_t>((x * 37 + y * 11) % 256);
            p[1] = static_cast<uint8_t>((x * x + 3 * y) % 256);
            p[2] = static_cast<uint8_t>(((x / 3 + y / 5) % 2) * 255);
        }
    return img;
}

// tests/data/pil-lanczos/ref-80x64-to-WxH.png were made by Pillow 13.0:
// Image.open("ref-80x64.png").resize((W, H), Image.Resampling.LANCZOS).save(...).
TEST(ImageOps, ResizeMatchesPillowByteForByte) {
    const std::string data = FLUX2_TEST_DATA;
    const Image ref = read_image(data + "/ref-80x64.png");
    for (auto [w, h] : {std::pair{37, 29}, {120, 100}, {80, 31}, {50, 64}, {13, 61}}) {
        const Image expected =
            read_image(data + "/pil-lanczos/ref-80x64-to-" + std::to_string(w) + "x" + std::to_string(h) + ".png");
        const Image got = resize_lanczos(ref, w, h);
        ASSERT_EQ(got.width, expected.width);
        ASSERT_EQ(got.height, expected.height);
        int mismatches = 0;
        for (size_t i = 0; i < got.rgb.size(); ++i) mismatches += got.rgb[i] != expected.rgb[i];
        EXPECT_EQ(mismatches, 0) << w << "x" << h;
    }
}

TEST(ImageOps, ResizeToSameSizeIsIdentity) {
    const Image img = pattern(31, 17);
    EXPECT_EQ(resize_lanczos(img, 31, 17).rgb, img.rgb);
}

TEST(ImageOps, ResizeKeepsConstantImages) {
    Image img = Image::blank(50, 30);
    for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = i % 3 == 0 ? 255 : i % 3 == 1 ? 0 : 77;
    for (auto [w, h] : {std::pair{17, 9}, {100, 61}, {50, 13}, {7, 30}}) {
        const Image r = resize_lanczos(img, w, h);
        ASSERT_EQ(r.width, w);
        ASSERT_EQ(r.height, h);
        for (size_t i = 0; i < r.rgb.size(); ++i) ASSERT_EQ(r.rgb[i], img.rgb[i % 3]) << w << "x" << h << " " << i;
    }
}

TEST(ImageOps, ResizeIsSeparableAndPillowOrdered) {
    // Pillow runs the horizontal pass first, with an 8-bit intermediate; doing the passes one at a time must agree.
    const Image img = pattern(40, 36);
    const Image both = resize_lanczos(img, 23, 15);
    const Image two_steps = resize_lanczos(resize_lanczos(img, 23, 36), 23, 15);
    EXPECT_EQ(both.rgb, two_steps.rgb);
}

TEST(ImageOps, DownscaleByTwoOfAStepAveragesAcrossIt) {
    // A vertical black/white edge at x = 8 of a 16-wide image; halving keeps it centred at x = 4 with ringing of
    // Lanczos-3 (overshoot clipped to [0, 255]) and a symmetric transition.
    Image img = Image::blank(16, 4);
    for (int y = 0; y < 4; ++y)
        for (int x = 8; x < 16; ++x) std::fill_n(img.pixel(x, y), 3, 255);
    const Image r = resize_lanczos(img, 8, 4);
    const uint8_t* row = r.pixel(0, 0);
    EXPECT_EQ(row[0], 0);
    EXPECT_EQ(row[7 * 3], 255);
    EXPECT_NEAR(static_cast<int>(row[3 * 3]) + row[4 * 3], 255, 1);  // antisymmetric around the edge
    EXPECT_LT(row[3 * 3], 128);
    EXPECT_GT(row[4 * 3], 128);
}

TEST(ImageOps, CenterCropOffsets) {
    const Image img = pattern(10, 7);
    const Image c = center_crop(img, 5, 4);  // left = 2, top = 1 (floor division)
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 5; ++x)
            for (int k = 0; k < 3; ++k) ASSERT_EQ(c.pixel(x, y)[k], img.pixel(x + 2, y + 1)[k]);
    EXPECT_THROW(center_crop(img, 11, 4), Error);
}

TEST(ImageOps, ReferencePreprocessingSizes) {
    EXPECT_EQ(preprocess_reference_image(pattern(80, 64)).shape(), (Shape{1, 3, 64, 80}));
    EXPECT_EQ(preprocess_reference_image(pattern(100, 70)).shape(), (Shape{1, 3, 64, 96}));
    // 2000x1000 > 1024^2: scale sqrt(1048576 / 2e6) -> int(1448.15) x int(724.08) -> floored to 1440 x 720.
    EXPECT_EQ(preprocess_reference_image(pattern(2000, 1000)).shape(), (Shape{1, 3, 720, 1440}));
    EXPECT_THROW(preprocess_reference_image(pattern(63, 100)), Error);
    EXPECT_THROW(preprocess_reference_image(pattern(600, 70)), Error);  // 8.57:1
    EXPECT_NO_THROW(preprocess_reference_image(pattern(512, 64)));      // exactly 8:1
}

TEST(ImageOps, ReferencePreprocessingValues) {
    const Image img = pattern(100, 70);
    const Tensor t = preprocess_reference_image(img);
    const float* p = t.f32();
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 64; ++y)
            for (int x = 0; x < 96; ++x) {
                const float unit = static_cast<float>(img.pixel(x + 2, y + 3)[c]) / 255.0f;
                ASSERT_EQ(p[(c * 64 + y) * 96 + x], 2.0f * unit - 1.0f);
            }
    EXPECT_EQ(*std::min_element(p, p + t.numel()), -1.0f);
    EXPECT_EQ(*std::max_element(p, p + t.numel()), 1.0f);
}

TEST(ImageOps, PostprocessClampsAndRounds) {
    const Tensor decoded = Tensor::from_f32({1, 3, 1, 2}, {-2.0f, 0.0f, 1.0f, 3.0f, -1.0f, 0.5f});
    const Tensor unit = postprocess_to_unit(decoded);
    ASSERT_EQ(unit.shape(), (Shape{1, 1, 2, 3}));
    EXPECT_EQ(unit.to_vector(), (std::vector<float>{0.0f, 1.0f, 0.0f, 0.5f, 1.0f, 0.75f}));
    const Image img = unit_tensor_to_image(unit, 0);
    // 0.5 * 255 = 127.5 rounds half to even -> 128; 0.75 * 255 = 191.25 -> 191.
    EXPECT_EQ(img.rgb, (std::vector<uint8_t>{0, 255, 0, 128, 255, 191}));
    EXPECT_THROW(unit_tensor_to_image(unit, 1), Error);
}

}  // namespace
}  // namespace flux2
