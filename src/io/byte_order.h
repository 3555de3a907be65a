#pragma once
// Big-endian integers as PNG chunks and JPEG markers store them (the image probe and the PNG decoder's chunk check).
#include <cstdint>

namespace flux2 {

inline uint32_t read_be32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint32_t read_be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }

}  // namespace flux2
