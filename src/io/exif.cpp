#include "io/exif.h"

#include <cstring>

namespace flux2 {

namespace {

constexpr uint16_t kOrientationTag = 0x0112;
constexpr uint16_t kTypeShort = 3;

struct TiffReader {
    const uint8_t* data;
    size_t size;
    bool little_endian;

    bool has(size_t offset, size_t n) const { return offset <= size && n <= size - offset; }
    uint16_t u16(size_t at) const {
        return little_endian ? static_cast<uint16_t>(data[at] | data[at + 1] << 8)
                             : static_cast<uint16_t>(data[at] << 8 | data[at + 1]);
    }
    uint32_t u32(size_t at) const {
        const uint32_t a = data[at], b = data[at + 1], c = data[at + 2], d = data[at + 3];
        return little_endian ? a | b << 8 | c << 16 | d << 24 : a << 24 | b << 16 | c << 8 | d;
    }
};

}  // namespace

int exif_orientation(const uint8_t* data, size_t size) {
    if (size >= 6 && std::memcmp(data, "Exif\0\0", 6) == 0) {
        data += 6;
        size -= 6;
    }
    if (size < 8) return 1;
    TiffReader r{data, size, data[0] == 'I'};
    const bool ii = data[0] == 'I' && data[1] == 'I', mm = data[0] == 'M' && data[1] == 'M';
    if (!(ii || mm) || r.u16(2) != 42) return 1;
    const size_t ifd = r.u32(4);
    if (!r.has(ifd, 2)) return 1;
    const size_t entries = r.u16(ifd);
    // 12 bytes per entry: tag u16, type u16, count u32, value (or offset) u32.
    if (!r.has(ifd + 2, entries * 12)) return 1;
    for (size_t i = 0; i < entries; ++i) {
        const size_t e = ifd + 2 + i * 12;
        if (r.u16(e) != kOrientationTag) continue;
        if (r.u16(e + 2) != kTypeShort || r.u32(e + 4) != 1) return 1;
        // A SHORT value sits in the first two bytes of the value field, in the file's byte order.
        const int v = r.u16(e + 8);
        return v >= 1 && v <= 8 ? v : 1;
    }
    return 1;
}

Image apply_exif_orientation(const Image& stored, int orientation) {
    if (orientation < 2 || orientation > 8) return stored;
    const int w = stored.width, h = stored.height;
    const bool swap = orientation >= 5;
    Image out = Image::blank(swap ? h : w, swap ? w : h);
    for (int y = 0; y < out.height; ++y) {
        for (int x = 0; x < out.width; ++x) {
            // The stored pixel shown at (x, y).
            int sx = x, sy = y;
            switch (orientation) {
                case 2:
                    sx = w - 1 - x;
                    break;
                case 3:
                    sx = w - 1 - x, sy = h - 1 - y;
                    break;
                case 4:
                    sy = h - 1 - y;
                    break;
                case 5:
                    sx = y, sy = x;
                    break;
                case 6:
                    sx = y, sy = h - 1 - x;
                    break;
                case 7:
                    sx = w - 1 - y, sy = h - 1 - x;
                    break;
                case 8:
                    sx = w - 1 - y, sy = x;
                    break;
            }
            std::memcpy(out.pixel(x, y), stored.pixel(sx, sy), 3);
        }
    }
    return out;
}

}  // namespace flux2
