#pragma once
// `flux2 bench --pipeline FOLDER`: the whole pipeline timed the way a user waits for it, per phase.
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "quant/weight_conversion.h"

namespace flux2::cli {

struct PipelineBench {
    std::string folder;                 // a pipeline folder: a real one, or one written by `bench --save-pipeline`
    std::vector<BackendOptions> paths;  // one engine per precision path, loaded in turn
    std::vector<int> resolutions;
    int steps = 0;    // denoising steps per image; 0: the variant's default (dev 50, klein 4, klein base 50)
    int repeats = 3;  // timed images per resolution, after one untimed image at that resolution
    uint64_t seed = 0;
    WeightPrecision text_encoder_weights = WeightPrecision::as_stored;
    std::string offload = "auto";        // --offload; rows of an offloading mode read "<path>/<mode>"
    int64_t resident_budget_bytes = -1;  // --resident-budget
    int stream_e4m3 = 0;                 // --stream-e4m3
    bool cold = false;                   // --cold: drop the folder from the page cache and time that load first
};

// The suffix of a row's label (both bench tables) for its attention path: "/attn-bf16" or "/attn-fp8" when one was
// asked for, "" for auto.
std::string attention_label(const std::string& attention);

// Loads the pipeline (timed), then per resolution makes one untimed image (CUDA graphs recorded, GEMMs tuned) and
// `repeats` timed ones; prints the medians of prompt encoding, denoising (and per step), VAE decode and the whole
// request, and the peak memory after loading and after the requests.
void run_pipeline_bench(const PipelineBench& b);

}  // namespace flux2::cli
