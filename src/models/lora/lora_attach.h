#pragma once
// Turns the active adapters into one LoraBranch per linear layer (quant/lora_branch.h). All checks happen here,
// before any layer changes: a term must address a module the model has, and its A and B must fit that module.
#include <memory>
#include <string>
#include <vector>

#include "models/lora/lora_adapter.h"
#include "quant/linear_weight.h"

namespace flux2 {

struct ActiveLora {
    std::string name;  // how requests and logs call it
    std::shared_ptr<const LoraAdapter> adapter;
    float strength = 1.0f;
};

// One entry per linear in `linears` (null: no adapter touches it). A fused linear (concat_rows) takes the terms of
// each of its RowParts; terms of one layer that share A (a fused BFL qkv on a fused q|k|v linear) stay one rank-r
// pair. Throws an Error naming the adapter's file and the key that does not fit; nothing is returned then.
std::vector<std::shared_ptr<const LoraBranch>> build_lora_branches(const std::vector<const LinearWeight*>& linears,
                                                                   const std::vector<ActiveLora>& active);

}  // namespace flux2
