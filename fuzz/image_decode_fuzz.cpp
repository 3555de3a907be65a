// libFuzzer target: an uploaded reference image, as the server takes it (request_parser.cpp add_reference): the
// header's declared size is probed first and refused above the server's default budget, then the image is decoded.
// Decoding must either give an image of the probed size (sides swapped by an EXIF rotation at most) or throw
// flux2::Error; a size other than the probed one would let an upload past the memory budget. Any other exception,
// crash or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>

#include "core/error.h"
#include "io/image.h"
#include "io/image_probe.h"
#include "server/image_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::optional<flux2::ImageSize> dims = flux2::probe_image_size(data, size);
    if (!dims || dims->width * dims->height > flux2::server::ServerLimits{}.max_reference_pixels)
        return 0;  // refused before decoding
    try {
        flux2::ImageText text;
        const flux2::Image img = flux2::decode_image(data, size, "fuzz-input", &text);
        const bool same = img.width == dims->width && img.height == dims->height;
        const bool rotated = img.width == dims->height && img.height == dims->width;
        if ((!same && !rotated) || img.rgb.size() != static_cast<size_t>(img.width) * img.height * 3) std::abort();
    } catch (const flux2::Error&) {
        // Rejected with a message: the expected outcome for a malformed image.
    }
    return 0;
}
