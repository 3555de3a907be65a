#pragma once
// EXIF orientation: the tag read from the TIFF structure a JPEG APP1 segment or a PNG eXIf chunk holds, and the
// flip / rotation that shows the stored pixels upright (what PIL's ImageOps.exif_transpose does).
#include <cstddef>
#include <cstdint>

#include "io/image.h"

namespace flux2 {

// The Orientation tag (0x0112) of IFD0, 1..8; 1 (as stored) when the data holds none or is malformed: a broken
// EXIF block must not make a readable image unreadable. `data` may start with the "Exif\0\0" header of a JPEG
// APP1 segment or directly with the TIFF header ("II*\0" / "MM\0*"). Every offset is checked against `size`.
int exif_orientation(const uint8_t* data, size_t size);

// The upright image for a stored image with EXIF orientation 1..8 (5..8 swap width and height):
// 2 mirror left-right, 3 rotate 180, 4 mirror top-bottom, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
// 8 rotate 90 counter-clockwise. Other values leave the image as it is.
Image apply_exif_orientation(const Image& stored, int orientation);

}  // namespace flux2
