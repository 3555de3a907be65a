#pragma once
// What an image request asks for once parsed and validated, and the limits it is checked against. The HTTP layer
// turns bodies into an ImageRequest (request_parser.h) before anything is queued.
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/image_encode.h"
#include "pipeline/flux2_engine.h"

namespace flux2::server {

// Every bound the server enforces on a request, in one place (docs/SERVER.md "Limits").
struct ServerLimits {
    int64_t max_body_bytes = 32ll << 20;           // --max-body-mb
    int64_t max_pixels = 2048ll * 2048;            // --max-pixels: width * height of an output image
    int max_images = 4;                            // --max-images: reference images per edit
    int max_n = 10;                                // images per request (OpenAI's bound)
    int max_queue = 8;                             // --max-queue: jobs waiting behind the running one
    int max_steps = 1000;                          // num_inference_steps
    int max_sequence_length = 512;                 // text tokens (FLUX.2's encoders are trained to 512)
    int64_t max_prompt_bytes = 64 * 1024;          // prompt and negative_prompt, UTF-8 bytes
    int64_t max_reference_pixels = 4096ll * 4096;  // a decoded reference image (before resizing)
    int max_loras = 8;                             // adapters in one request's `lora` list
};

// What the loaded model allows and defaults to.
struct ModelFacts {
    std::string id;                                   // the model's name in /v1/models
    bool true_cfg = false;                            // klein base: negative_prompt and true_cfg_scale mean something
    int default_width = 1024, default_height = 1024;  // size "auto" without a reference image
};

enum class RequestKind { generation, edit };

// One entry of a request's `lora` list: an adapter already loaded (name) or a file under --lora-dir (path).
struct LoraChoice {
    std::string name, path;
    float strength = 1.0f;
};

struct ImageRequest {
    RequestKind kind = RequestKind::generation;
    EngineRequest engine;  // prompt, size, steps, guidance, seeds, n, reference images
    ImageFormat output_format = ImageFormat::png;
    int output_compression = 100;  // JPEG/WebP quality
    bool response_url = false;     // response_format "url" (else b64_json)
    bool stream = false;
    std::string model, user;
    // The request's `lora` list: absent = the server's active set (--lora, /v1/set_lora); empty = none.
    std::optional<std::vector<LoraChoice>> loras;
    // Filled when queued: the (name, strength) adapters the job runs with.
    std::vector<std::pair<std::string, float>> active_loras;
};

}  // namespace flux2::server
