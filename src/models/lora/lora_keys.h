#pragma once
// LoRA tensor names: which format a key is written in, which layer it belongs to, and which internal (diffusers)
// modules that layer's B rows go to. The table is in docs/LORA.md.
#include <optional>
#include <string>
#include <vector>

#include "models/lora/lora_adapter.h"

namespace flux2 {

enum class LoraRole { a, b, alpha };

struct LoraKey {
    std::string layer;  // the key without its role suffix ("diffusion_model.double_blocks.0.img_attn.qkv")
    LoraRole role = LoraRole::a;
    LoraFormat format = LoraFormat::diffusers;
    // The internal modules the layer's B rows go to, in row order: one (1:1), three (a fused BFL qkv: equal
    // thirds q, k, v) or, with swap_halves, norm_out.linear fed from BFL (shift, scale) rows.
    std::vector<std::string> modules;
    bool swap_halves = false;
};

// nullopt for a text-encoder tensor (skipped). Throws naming `path` and the key for other adapter kinds (LoKr,
// LoHa, DoRA, ...) and for keys that name no FLUX.2 transformer layer.
std::optional<LoraKey> parse_lora_key(const std::string& path, const std::string& key);

// True for any tensor name of the low-rank pair kinds this reader loads.
bool is_lora_pair_key(const std::string& key);

}  // namespace flux2
