#pragma once
// Images to file bytes in the formats an API client may ask for: PNG (with text chunks), JPEG and WebP. The one
// encoder behind `flux2 generate`'s files and the server's responses.
#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace flux2 {

enum class ImageFormat { png, jpeg, webp };

// "png", "jpeg" (also "jpg"), "webp"; throws flux2::Error naming the accepted values otherwise.
ImageFormat parse_image_format(const std::string& name);
const char* image_format_name(ImageFormat format);       // "png", "jpeg", "webp"
const char* image_format_mime_type(ImageFormat format);  // "image/png", ...

// quality 0-100 (JPEG: libjpeg quality; WebP: lossy quality, 100 = lossless). PNG is lossless and ignores it.
std::vector<uint8_t> encode_jpeg(const Image& image, int quality);
std::vector<uint8_t> encode_webp(const Image& image, int quality);
// Throws unless `image` is non-empty with width * height * 3 bytes; `who` names the caller.
void check_encodable(const Image& image, const char* who);
// `text` is stored in PNG files only.
std::vector<uint8_t> encode_image(const Image& image, ImageFormat format, int quality, const ImageText& text = {});

}  // namespace flux2
