// libFuzzer target: the body of POST /v1/images/generations or /v1/images/edits (the first byte picks which), parsed
// as the server parses it (parse_image_json). It must give a request within the limits or throw ApiError (a 4xx
// answer naming the field); a request outside the limits, another exception type, a crash or a sanitizer report is
// a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/request_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    using flux2::server::RequestKind;
    const RequestKind kind = data[0] & 1 ? RequestKind::edit : RequestKind::generation;
    const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
    flux2::server::ServerLimits limits;
    limits.max_reference_pixels = 1024 * 1024;  // keeps each decode small enough for the fuzzer's pace
    flux2::server::ModelFacts model;
    model.id = "fuzz";
    model.true_cfg = data[0] & 2;
    try {
        const flux2::server::ImageRequest r = flux2::server::parse_image_json(kind, body, limits, model);
        const flux2::EngineRequest& e = r.engine;
        const bool within = e.num_images >= 1 && e.num_images <= limits.max_n && e.num_steps >= 0 &&
                            e.num_steps <= limits.max_steps && e.width >= 0 && e.height >= 0 &&
                            int64_t{e.width} * e.height <= limits.max_pixels &&
                            static_cast<int64_t>(e.prompt.size()) <= limits.max_prompt_bytes &&
                            static_cast<int64_t>(e.negative_prompt.size()) <= limits.max_prompt_bytes &&
                            e.max_sequence_length >= 1 && e.max_sequence_length <= limits.max_sequence_length &&
                            e.reference_images.size() <= static_cast<size_t>(limits.max_images) &&
                            (e.seeds.empty() || e.seeds.size() == static_cast<size_t>(e.num_images)) &&
                            (!r.loras || r.loras->size() <= static_cast<size_t>(limits.max_loras));
        if (!within) std::abort();
    } catch (const flux2::server::ApiError&) {
        // A 4xx answer: the expected outcome for a malformed request.
    }
    return 0;
}
