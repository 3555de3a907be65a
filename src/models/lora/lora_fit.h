#pragma once
// Which FLUX.2 models a LoRA fits, from shapes alone (`flux2 inspect`): every term must name a linear of the model
// and match its [out, in]. The check at attach time (lora_attach.h) is the binding one; this one needs no weights.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "models/flux2/flux2_config.h"
#include "models/lora/lora_adapter.h"

namespace flux2 {

// [out, in] of every linear module a transformer of `config` has, by internal (unfused) name: what LoRA terms
// address.
std::map<std::string, std::pair<int64_t, int64_t>> flux2_lora_targets(const Flux2Config& config);

// nullopt when every term fits a transformer of `config`, else why not (naming the key).
std::optional<std::string> lora_misfit(const LoraAdapter& adapter, const Flux2Config& config);

}  // namespace flux2
