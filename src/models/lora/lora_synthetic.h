#pragma once
// A random LoRA on every linear of a transformer (`flux2 bench --lora-rank`): the cost of a LoRA at real sizes
// without a file. q, k and v of a stream share one A, as in a BFL/kohya LoRA trained on the fused qkv.
#include <cstdint>
#include <string>

#include "models/flux2/flux2_config.h"
#include "models/lora/lora_adapter.h"

namespace flux2 {

LoraAdapter synthetic_lora(const Flux2Config& config, int64_t rank, uint64_t seed);

// Writes an adapter as a diffusers/PEFT LoRA file (transformer.<module>.lora_A/lora_B.weight in BF16, each term's
// scale folded into B, no metadata), so `flux2 bench` can time reading a file of the synthetic adapter's size.
// Terms that share an A in memory get a copy each, as separate q/k/v modules of a diffusers file do.
void write_lora_diffusers(const LoraAdapter& adapter, const std::string& path);

}  // namespace flux2
