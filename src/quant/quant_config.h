#pragma once
// Per-layer quantization resolution: which format each linear of a checkpoint is stored in, who said so, and how
// its NVFP4 bytes are laid out. Follows sglang's priority order (docs/FORMATS.md has the full rules):
//   1. hf_quant_config.json        nested {"quantization": {quant_algo, exclude_modules, group_size}}
//   2. config.json                 flat "quantization_config" {quant_algo, group_size, ignore}
//   3. safetensors header          __metadata__._quantization_metadata {"layers": {L: {"format": ...}}}
//   4. per-layer markers           U8 tensors "<L>.comfy_quant" holding {"format": ...}
//   5. the tensors themselves      U8 .weight + 2-D F8 .weight_scale = NVFP4; F8 .weight + scalar scale = FP8
// The highest source present decides for every layer; whatever it decides is then checked against the tensors
// (no silent fallbacks: a declared NVFP4 layer stored as BF16 is an error).
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "quant/linear_weight.h"

namespace flux2 {

enum class QuantSource { hf_quant_config, config_json, header_metadata, comfy_quant, inferred };
const char* quant_source_name(QuantSource source);  // "hf_quant_config.json", ..., "tensors"

// NVFP4 byte conventions. BFL / ComfyUI files: element 2i in the high nibble, 128x4-swizzled block scales.
// NVIDIA ModelOpt exports: element 2i in the low nibble, plain row-major [N, K/16] scales.
enum class NibbleOrder { hi_first, lo_first };
enum class ScaleLayout { swizzled, linear };
const char* nibble_order_name(NibbleOrder order);   // "hi-first" / "lo-first"
const char* scale_layout_name(ScaleLayout layout);  // "swizzled-128x4" / "linear"

struct LayerQuant {
    WeightFormat format = WeightFormat::dense;
    std::string label;  // "bf16", "f32", "nvfp4", "fp8": as LinearWeight::format_label() will say
    QuantSource source = QuantSource::inferred;
    std::string reason;                // e.g. "excluded by pattern \"x_embedder\"", "listed as nvfp4"
    bool dynamic_input_scale = false;  // NVFP4 without input_scale: activations take amax(x)/(448*6) per call
    std::string fp8_scale_name;        // FP8 only: "weight_scale" or the older ComfyUI "scale_weight"
};

struct QuantConfig {
    QuantSource declared_by = QuantSource::inferred;  // the highest-priority source present
    std::string declared_in;                          // file or key it came from, for messages
    std::vector<std::string> exclude_patterns;        // hf_quant_config / config.json only
    int group_size = 16;                              // elements per NVFP4 block scale
    NibbleOrder nibble_order = NibbleOrder::hi_first;
    ScaleLayout scale_layout = ScaleLayout::swizzled;
    std::string layout_reason;  // why this nibble order / scale layout was chosen
    // Every module with a 2-D ".weight" (a linear), by checkpoint module name (the weight name minus ".weight").
    std::map<std::string, LayerQuant> layers;

    const LayerQuant& layer(const std::string& module) const;  // throws if the module is not a resolved linear
    bool has_nvfp4() const;
    std::string summary() const;  // "8 bf16 / 12 nvfp4 checkpoint linears (declared by ...; nvfp4 hi-first, ...)"
};

struct QuantInputs {
    const Checkpoint* checkpoint = nullptr;  // header is enough unless the file has .comfy_quant markers
    std::optional<nlohmann::json> hf_quant_config;
    std::string hf_quant_config_path;
    std::optional<nlohmann::json> config;  // config.json; only its "quantization_config" is read
    std::string config_path;
    // A second name of a checkpoint module that exclude patterns are also matched against (the binder passes the
    // BFL -> diffusers map, so patterns written in either naming work). May be empty.
    std::function<std::string(const std::string&)> alias;
};

QuantConfig resolve_quant_config(const QuantInputs& inputs);

// `*` matches any run of characters (dots included); everything else is literal; the whole name must match.
bool wildcard_match(const std::string& pattern, const std::string& name);

}  // namespace flux2
