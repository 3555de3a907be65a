#pragma once
// 8-bit RGB images and their files: PNG (libpng; read and write, with text chunks for generation parameters) and
// JPEG (libjpeg; read). Decoders convert whatever the file holds to RGB8 the way PIL's convert("RGB") does:
// palette and grey expanded, alpha dropped (not composited), 16-bit samples reduced to their high byte, CMYK/YCCK
// JPEGs converted with PIL's naive formula, no gamma or colour-profile conversion. The EXIF orientation (JPEG APP1,
// PNG eXIf) is applied, as PIL's ImageOps.exif_transpose does, so images come back as they are shown.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace flux2 {

struct Image {
    int width = 0;
    int height = 0;
    std::vector<uint8_t> rgb;  // [height, width, 3], row-major

    static Image blank(int width, int height);  // black, checked size
    uint8_t* pixel(int x, int y) { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
    const uint8_t* pixel(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

// Key -> value text stored in the PNG (prompt, seed, steps, guidance, model, precision, ...). Keys must be 1-79
// printable ASCII characters without leading, trailing or double spaces; values are UTF-8. ASCII values are written
// as tEXt chunks, others as uncompressed iTXt chunks.
using ImageText = std::map<std::string, std::string>;

// Largest width or height the decoders accept (bounds memory on hostile files).
constexpr int kMaxImageSide = 16384;

// zlib level of the PNGs flux2 writes: 4 keeps a photograph within 1% of the default level 6's size at about 40%
// less time (BM_EncodePng, docs/PERFORMANCE.md "Writing the image"); ComfyUI's SaveImage also writes level 4.
constexpr int kPngZlibLevel = 4;

std::vector<uint8_t> encode_png(const Image& image, const ImageText& text = {}, int zlib_level = kPngZlibLevel);
// Writes to a temporary file next to `path` and renames it, so a failed write never leaves a partial image.
void write_png(const std::string& path, const Image& image, const ImageText& text = {});

// `origin` names the data in error messages (a path, "request body", ...). text, if given, receives every
// tEXt / zTXt / iTXt chunk of a PNG.
Image decode_png(const uint8_t* data, size_t size, const std::string& origin, ImageText* text = nullptr);
Image decode_jpeg(const uint8_t* data, size_t size, const std::string& origin);
// PNG or JPEG, recognised by signature.
Image decode_image(const uint8_t* data, size_t size, const std::string& origin, ImageText* text = nullptr);
Image read_image(const std::string& path, ImageText* text = nullptr);

}  // namespace flux2
