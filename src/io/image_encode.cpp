#include "io/image_encode.h"

#include <webp/encode.h>

#include "core/error.h"

namespace flux2 {

void check_encodable(const Image& image, const char* who) {
    check(
        image.width > 0 && image.height > 0 && image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
        who, ": image of ", image.width, "x", image.height, " has ", image.rgb.size(), " bytes");
}

ImageFormat parse_image_format(const std::string& name) {
    if (name == "png") return ImageFormat::png;
    if (name == "jpeg" || name == "jpg") return ImageFormat::jpeg;
    if (name == "webp") return ImageFormat::webp;
    fail("unknown image format '", name, "' (png, jpeg or webp)");
}

const char* image_format_name(ImageFormat format) {
    switch (format) {
        case ImageFormat::png:
            return "png";
        case ImageFormat::jpeg:
            return "jpeg";
        case ImageFormat::webp:
            return "webp";
    }
    return "?";
}

const char* image_format_mime_type(ImageFormat format) {
    switch (format) {
        case ImageFormat::png:
            return "image/png";
        case ImageFormat::jpeg:
            return "image/jpeg";
        case ImageFormat::webp:
            return "image/webp";
    }
    return "application/octet-stream";
}

std::vector<uint8_t> encode_webp(const Image& image, int quality) {
    check_encodable(image, "encode_webp");
    check(quality >= 0 && quality <= 100, "WebP quality must be 0-100, got ", quality);
    // WebP's own limit is 16383 pixels a side.
    check(image.width <= WEBP_MAX_DIMENSION && image.height <= WEBP_MAX_DIMENSION, "WebP images are at most ",
          WEBP_MAX_DIMENSION, " pixels a side, got ", image.width, "x", image.height);
    uint8_t* data = nullptr;
    const size_t size = quality == 100
                            ? WebPEncodeLosslessRGB(image.rgb.data(), image.width, image.height, image.width * 3, &data)
                            : WebPEncodeRGB(image.rgb.data(), image.width, image.height, image.width * 3,
                                            static_cast<float>(quality), &data);
    check(size > 0 && data != nullptr, "encode_webp: libwebp failed on a ", image.width, "x", image.height, " image");
    std::vector<uint8_t> out(data, data + size);
    WebPFree(data);
    return out;
}

std::vector<uint8_t> encode_image(const Image& image, ImageFormat format, int quality, const ImageText& text) {
    switch (format) {
        case ImageFormat::png:
            return encode_png(image, text);
        case ImageFormat::jpeg:
            return encode_jpeg(image, quality);
        case ImageFormat::webp:
            return encode_webp(image, quality);
    }
    fail("encode_image: unknown format");
}

}  // namespace flux2
