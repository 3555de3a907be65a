#pragma once
// A random LoRA on every linear of a transformer (`flux2 bench --lora-rank`): the cost of a LoRA at real sizes
// without a file. q, k and v of a stream share one A, as in a BFL/kohya LoRA trained on the fused qkv.
#include <cstdint>

#include "models/flux2/flux2_config.h"
#include "models/lora/lora_adapter.h"

namespace flux2 {

LoraAdapter synthetic_lora(const Flux2Config& config, int64_t rank, uint64_t seed);

}  // namespace flux2
