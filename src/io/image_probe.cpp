#include "io/image_probe.h"

#include <algorithm>

#include "io/byte_order.h"

namespace flux2 {

namespace {

std::optional<ImageSize> probe_png(const uint8_t* data, size_t size) {
    // Signature (8), then the IHDR chunk: length (4), "IHDR" (4), width (4), height (4).
    if (size < 24 || data[12] != 'I' || data[13] != 'H' || data[14] != 'D' || data[15] != 'R') return std::nullopt;
    // The PNG specification allows sides of 1 .. 2^31 - 1; outside it the header is invalid, and callers may
    // multiply the sides in int64_t without overflow (a fuzzed 2^32 - 1 squared overflowed the server's budget check).
    const uint32_t width = read_be32(data + 16), height = read_be32(data + 20);
    constexpr uint32_t kMaxSide = 0x7FFFFFFF;
    if (width == 0 || height == 0 || width > kMaxSide || height > kMaxSide) return std::nullopt;
    return ImageSize{width, height};
}

std::optional<ImageSize> probe_jpeg(const uint8_t* data, size_t size) {
    size_t i = 2;  // after SOI
    while (i + 4 <= size) {
        if (data[i] != 0xFF) return std::nullopt;
        const uint8_t marker = data[i + 1];
        if (marker == 0xFF) {  // fill byte
            ++i;
            continue;
        }
        if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {  // no length field
            i += 2;
            continue;
        }
        const size_t length = read_be16(data + i + 2);
        if (length < 2) return std::nullopt;
        // SOF0..SOF15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
        if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
            if (i + 9 > size) return std::nullopt;
            return ImageSize{read_be16(data + i + 7), read_be16(data + i + 5)};
        }
        if (marker == 0xDA || marker == 0xD9) return std::nullopt;  // scan data or end before any frame header
        i += 2 + length;
    }
    return std::nullopt;
}
}  // namespace

std::optional<ImageSize> probe_image_size(const uint8_t* data, size_t size) {
    static constexpr uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size >= 8 && std::equal(kPng, kPng + 8, data)) return probe_png(data, size);
    if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return probe_jpeg(data, size);
    return std::nullopt;
}

}  // namespace flux2
