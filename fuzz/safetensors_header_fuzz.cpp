// libFuzzer target: the input is a whole safetensors file image. Parsing must either succeed with every tensor
// inside the image (read_f32 then touches each byte, so ASan sees any bounds mistake) or throw flux2::Error;
// any other exception, crash or sanitizer report is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const flux2::SafetensorsHeader header = flux2::parse_safetensors_image(data, size, "fuzz-input");
        for (const flux2::TensorInfo& t : header.tensors) {
            if (t.dtype == flux2::DType::F8_E4M3 || t.dtype == flux2::DType::F8_E5M2) continue;
            volatile float sink = 0;
            for (float v : flux2::read_f32(t)) sink = sink + v;
        }
    } catch (const flux2::Error&) {
        // Rejected with a message: the expected outcome for malformed input.
    }
    return 0;
}
