#pragma once
// Complete FLUX.2 pipeline folders with deterministic random weights in the real on-disk formats (diffusers layout:
// model_index.json, a BFL NVFP4-mixed transformer file, vae/, a Qwen3 or Mistral text_encoder/ and its tokenizer),
// written by `flux2 bench --save-pipeline`: real-size ones for timing the whole pipeline and the server on a GPU, and a
// tiny one for quick smoke runs and the test suite. Pictures made with them are noise.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/flux2/flux2_config.h"

namespace flux2::cli {

struct SyntheticPipelineSpec {
    Flux2Config transformer;                   // joint_attention_dim must be 3 x the text encoder's hidden size
    nlohmann::json text_encoder;               // a Qwen3 config.json
    std::vector<int64_t> text_encoder_layers;  // the hidden layers its load declares (and so the file holds)
    nlohmann::json vae;                        // an AutoencoderKLFlux2 config.json
    uint64_t seed = 0;
    std::string transformer_file;               // file name inside transformer/
    bool text_encoder_nvfp4 = false;            // its linears as NVFP4 (RecordingRandomWeights), else bf16
    std::string tokenizer = "qwen3-tokenizer";  // the assets/ folder copied to tokenizer/
};

// "tiny": klein-style (distilled, 4 steps), D 256 (4 heads), a 64-wide 28-layer text encoder, a small VAE; fast on
// a CPU. Until the trained demo model it was the built-in demo.
SyntheticPipelineSpec tiny_pipeline_spec();
// "tiny-dev": the same transformer and VAE as dev (guidance embedding, 50 steps) with a 64-wide Mistral-shaped text
// encoder in NVFP4 and the reduced Tekken tokenizer, as the real-size dev folder has: dev's whole path on a CPU.
SyntheticPipelineSpec tiny_dev_pipeline_spec();
// Real dimensions: "klein-4b" / "klein-9b" with the Qwen3-4B / Qwen3-8B encoders and the FLUX.2 VAE; "dev" with
// Mistral-Small-3.x's text model (the 30 of its 40 layers FLUX.2 reads, 5120 wide, MLP 32768) in NVFP4, 9.7 GB,
// as comfy-kitchen quantizes it, and a reduced Tekken tokenizer (assets/mistral-tekken-tokenizer).
// small_text_encoder: a 5120-wide (dev) or real-width (klein) Qwen3-style stand-in of 30 or 36 layers with 8 heads
// and an MLP of 512 instead, for step and server timing where prompt encoding does not matter and a smaller
// folder is written faster.
SyntheticPipelineSpec real_size_pipeline_spec(const std::string& preset, uint64_t seed,
                                              bool small_text_encoder = false);

// Writes the folder at `dir` (which must not exist yet, or is replaced).
void write_synthetic_pipeline(const std::filesystem::path& dir, const SyntheticPipelineSpec& spec);

}  // namespace flux2::cli
