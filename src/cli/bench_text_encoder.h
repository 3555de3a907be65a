#pragma once
// `flux2 bench --text-encoder`: prompt encoding alone at real size, the FLUX.2 text encoders built in memory with
// random weights (Mistral-Small-3.x's 24B for dev without writing a 48 GB file): per weight format, the load
// (random fill, upload, conversion on the first encode), the median encode of one prompt padded to --text-tokens
// (as the pipeline pads to max_sequence_length), and the peak device memory. Each format gets a fresh backend.
// With `profile`, one more encode is timed per op on the device (`--profile`).
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace flux2::cli {

struct TextEncoderBench {
    std::string preset;                // "mistral-small-3", "qwen3-4b" or "qwen3-8b" (DecoderConfig::preset)
    std::vector<std::string> formats;  // of the random linears: "bf16", "fp8", "fp4" (as such files hold them)
    BackendOptions backend;
    int64_t tokens = 512;
    int repeats = 3;  // timed encodes per format, after one untimed
    uint64_t seed = 0;
    bool profile = false;  // after the timed encodes, one more op by op with the device time per op
};

void run_text_encoder_bench(const TextEncoderBench& b);

}  // namespace flux2::cli
