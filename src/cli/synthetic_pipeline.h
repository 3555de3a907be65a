#pragma once
// Complete FLUX.2 pipeline folders with deterministic random weights in the real on-disk formats (diffusers layout:
// model_index.json, a BFL NVFP4-mixed transformer file, vae/, a Qwen3-style text_encoder/ and the real Qwen3
// tokenizer), written by `flux2 bench --save-pipeline`: real-size ones for timing the whole pipeline and the server
// on a GPU, and a tiny one for quick smoke runs and the test suite. Pictures made with them are noise.
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
    std::string transformer_file;  // file name inside transformer/
};

// "tiny": klein-style (distilled, 4 steps), D 256 (4 heads), a 64-wide 28-layer text encoder, a small VAE; fast on
// a CPU. Until the trained demo model it was the built-in demo.
SyntheticPipelineSpec tiny_pipeline_spec();
// Real dimensions: "klein-4b" / "klein-9b" with the Qwen3-4B / Qwen3-8B encoders and the FLUX.2 VAE; "dev" with a
// 5120-wide Qwen3-style stand-in for Mistral-Small (30 layers, 8 heads, MLP 512: the transformer and VAE are real
// size, the text encoder has the real output width but ~1.7B parameters instead of 24B, so that the folder is
// written in minutes and fits the GPU machine's disk; its prompt-encoding time is not Mistral's).
// small_text_encoder: klein too gets the stand-in kind of encoder (its real width, 8 heads, MLP 512), for step and
// server timing where prompt encoding does not matter and a smaller folder is written faster.
SyntheticPipelineSpec real_size_pipeline_spec(const std::string& preset, uint64_t seed,
                                              bool small_text_encoder = false);

// Writes the folder at `dir` (which must not exist yet, or is replaced).
void write_synthetic_pipeline(const std::filesystem::path& dir, const SyntheticPipelineSpec& spec);

}  // namespace flux2::cli
