#pragma once
// The pixel size a PNG or JPEG declares, read from its header without decoding, so that a caller can refuse an image
// too large for its memory budget before the decoder allocates it (a small compressed upload can declare a huge
// image).
#include <cstddef>
#include <cstdint>
#include <optional>

namespace flux2 {

struct ImageSize {
    int64_t width = 0, height = 0;
};

// nullopt when the bytes are neither a PNG with a valid header (sides 1 .. 2^31 - 1, so that width * height fits
// int64_t) nor a JPEG with a readable frame header.
std::optional<ImageSize> probe_image_size(const uint8_t* data, size_t size);

}  // namespace flux2
