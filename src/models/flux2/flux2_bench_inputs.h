#pragma once
// Deterministic transformer inputs for benchmarks: a square grid of image tokens, a run of text tokens, standard
// normal latents and embeddings, sigma 0.5 (and guidance 4 where the model embeds it).
#include <cstdint>

#include "models/flux2/flux2_transformer.h"

namespace flux2 {

Flux2Inputs benchmark_inputs(const Flux2Config& config, int64_t grid_side, int64_t text_tokens, uint64_t seed);

}  // namespace flux2
