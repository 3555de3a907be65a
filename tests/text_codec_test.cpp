// UTF-8 validation and base64 (core/text_codec.h), and the image encoders/probe behind the server's responses.
#include "core/text_codec.h"

#include <gtest/gtest.h>
#include <webp/decode.h>

#include <random>

#include "core/error.h"
#include "io/image.h"
#include "io/image_encode.h"
#include "io/image_probe.h"

namespace flux2 {
namespace {

TEST(TextCodec, Utf8AcceptsWellFormedAndRejectsTheRest) {
    EXPECT_TRUE(is_valid_utf8("plain ascii"));
    EXPECT_TRUE(is_valid_utf8("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xb1"));  // été € 🐱
    EXPECT_FALSE(is_valid_utf8("\xc3"));                                            // truncated
    EXPECT_FALSE(is_valid_utf8("\xe2\x82"));                                        // truncated
    EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));                                        // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));                                    // surrogate U+D800
    EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));                                // above U+10FFFF
    EXPECT_FALSE(is_valid_utf8("\x80"));                                            // lone continuation byte
}

TEST(TextCodec, Base64KnownVectorsRoundTrip) {
    // RFC 4648 section 10.
    const std::pair<std::string, std::string> vectors[] = {{"", ""},
                                                           {"f", "Zg=="},
                                                           {"fo", "Zm8="},
                                                           {"foo", "Zm9v"},
                                                           {"foob", "Zm9vYg=="},
                                                           {"fooba", "Zm9vYmE="},
                                                           {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, coded] : vectors) {
        EXPECT_EQ(base64_encode(reinterpret_cast<const uint8_t*>(plain.data()), plain.size()), coded);
        auto back = base64_decode(coded);
        ASSERT_TRUE(back.has_value()) << coded;
        EXPECT_EQ(std::string(back->begin(), back->end()), plain);
    }
    std::mt19937 rng(5);
    for (int n = 0; n < 200; ++n) {
        std::vector<uint8_t> bytes(n);
        for (auto& b : bytes) b = static_cast<uint8_t>(rng());
        auto back = base64_decode(base64_encode(bytes.data(), bytes.size()));
        ASSERT_TRUE(back.has_value());
        EXPECT_EQ(*back, bytes);
    }
}

TEST(TextCodec, Base64RejectsMalformedText) {
    for (const char* bad : {"Zg=", "Zg", "Z===", "Zm9v\n", "Zm 9v", "Zm9v!A==", "=Zm9", "Zg==Zg==", "Zm=v"})
        EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
}

Image gradient(int w, int h) {
    Image img = Image::blank(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            uint8_t* p = img.pixel(x, y);
            p[0] = static_cast<uint8_t>(x * 255 / w), p[1] = static_cast<uint8_t>(y * 255 / h), p[2] = 128;
        }
    return img;
}

TEST(ImageEncode, JpegAndWebpDecodeBackCloseToTheOriginal) {
    const Image img = gradient(48, 32);
    const std::vector<uint8_t> jpeg = encode_jpeg(img, 95);
    ASSERT_GT(jpeg.size(), 3u);
    EXPECT_EQ(jpeg[0], 0xFF);
    const Image back = decode_jpeg(jpeg.data(), jpeg.size(), "test");
    ASSERT_EQ(back.width, 48);
    ASSERT_EQ(back.height, 32);
    int worst = 0;
    for (size_t i = 0; i < img.rgb.size(); ++i) worst = std::max(worst, std::abs(int(back.rgb[i]) - int(img.rgb[i])));
    EXPECT_LE(worst, 24);  // JPEG at quality 95 on a smooth gradient

    const std::vector<uint8_t> webp = encode_webp(img, 100);  // lossless
    ASSERT_GT(webp.size(), 12u);
    EXPECT_EQ(std::string(webp.begin(), webp.begin() + 4), "RIFF");
    EXPECT_EQ(std::string(webp.begin() + 8, webp.begin() + 12), "WEBP");
    int w = 0, h = 0;
    uint8_t* decoded = WebPDecodeRGB(webp.data(), webp.size(), &w, &h);
    ASSERT_NE(decoded, nullptr);
    EXPECT_EQ(std::vector<uint8_t>(decoded, decoded + w * h * 3), img.rgb);  // quality 100 is lossless
    WebPFree(decoded);
    const std::vector<uint8_t> lossy = encode_webp(img, 10);
    EXPECT_TRUE(WebPGetInfo(lossy.data(), lossy.size(), &w, &h));
    EXPECT_EQ(w, 48);
    EXPECT_EQ(encode_image(img, ImageFormat::png, 0), encode_png(img));
}

TEST(ImageEncode, FormatNamesAndBadInput) {
    EXPECT_EQ(parse_image_format("jpg"), ImageFormat::jpeg);
    EXPECT_STREQ(image_format_mime_type(parse_image_format("webp")), "image/webp");
    EXPECT_THROW(parse_image_format("gif"), Error);
    EXPECT_THROW(encode_jpeg(Image{}, 90), Error);
    EXPECT_THROW(encode_jpeg(gradient(16, 16), 101), Error);
}

TEST(ImageProbe, ReadsDeclaredSizeWithoutDecoding) {
    const Image img = gradient(40, 24);
    const std::vector<uint8_t> png = encode_png(img), jpeg = encode_jpeg(img, 80);
    for (const auto* bytes : {&png, &jpeg}) {
        auto size = probe_image_size(bytes->data(), bytes->size());
        ASSERT_TRUE(size.has_value());
        EXPECT_EQ(size->width, 40);
        EXPECT_EQ(size->height, 24);
    }
    const std::vector<uint8_t> junk = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01};  // a segment length below 2
    EXPECT_FALSE(probe_image_size(junk.data(), junk.size()).has_value());
    EXPECT_FALSE(probe_image_size(png.data(), 20).has_value());
    const uint8_t text[] = "hello world, not an image";
    EXPECT_FALSE(probe_image_size(text, sizeof text).has_value());
}

// PNG sides are 1 .. 2^31 - 1; a header outside that is invalid, so that width * height always fits int64_t (found
// by fuzz/image_decode_fuzz.cpp: 2^32 - 1 squared overflowed).
TEST(ImageProbe, PngSidesOutsideTheSpecificationAreInvalid) {
    std::vector<uint8_t> png = encode_png(gradient(40, 24));
    auto with_width = [&](uint32_t w) {
        for (int i = 0; i < 4; ++i) png[16 + i] = static_cast<uint8_t>(w >> (24 - 8 * i));
        return probe_image_size(png.data(), png.size());
    };
    ASSERT_TRUE(with_width(0x7FFFFFFF).has_value());
    EXPECT_EQ(with_width(0x7FFFFFFF)->width, 0x7FFFFFFF);
    EXPECT_FALSE(with_width(0x80000000).has_value());
    EXPECT_FALSE(with_width(0xFFFFFFFF).has_value());
    EXPECT_FALSE(with_width(0).has_value());
}

}  // namespace
}  // namespace flux2
