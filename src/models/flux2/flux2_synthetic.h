#pragma once
// Deterministic random FLUX.2 transformer checkpoints in BFL's NVFP4-mixed on-disk layout (the layout of
// flux2-dev-nvfp4-mixed.safetensors): the demo model, benchmark models and loader tests use it. The weights are
// random, so pictures made with them are noise.
#include <cstdint>
#include <string>

#include "models/flux2/flux2_config.h"

namespace flux2 {

// Writes `path` (one .safetensors file, BFL names, _quantization_metadata header):
// NVFP4 for img_mlp/txt_mlp/linear1/linear2 (txt_mlp without input_scale), bf16 for everything else.
void write_synthetic_transformer(const std::string& path, const Flux2Config& config, uint64_t seed);

}  // namespace flux2
