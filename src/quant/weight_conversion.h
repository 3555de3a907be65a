#pragma once
// Converting 16/32-bit linear weights to a smaller stored format at load (--text-encoder-precision): the text
// encoders are shipped in bf16 (FLUX.2-dev's Mistral-Small is 48 GB), and FP8 or NVFP4 halves or quarters that.
// Weights already quantized in their file stay as they are.
#include <string>

#include "quant/linear_weight.h"

namespace flux2 {

enum class WeightPrecision {
    as_stored,  // "bf16": the checkpoint's own format
    fp8,        // E4M3, one scale per output row (amax / 448)
    fp4,        // NVFP4 as comfy-kitchen makes it: amax/(448*6) per tensor, E4M3 per 16 inputs, no input_scale
};

// "bf16" (as stored), "fp8" or "fp4"; `flag` names the option in the error.
WeightPrecision parse_weight_precision(const std::string& name, const std::string& flag);
const char* weight_precision_name(WeightPrecision p);

// A dense weight in `p` (its LoRA branch and name kept); anything else, and NVFP4 for in_features not divisible by
// 16, unchanged. `converted` tells which happened.
LinearWeight convert_weight(LinearWeight w, WeightPrecision p, bool* converted = nullptr);

}  // namespace flux2
