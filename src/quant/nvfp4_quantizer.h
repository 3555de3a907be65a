#pragma once
// Weight quantization to NVFP4 as comfy-kitchen / BFL produce it (for the demo checkpoint, synthetic benchmark
// models and tests): per-tensor scale amax/(448*6), per-16 E4M3 block scales, E2M1 codes packed hi-first.
#include <cstdint>
#include <vector>

#include "quant/linear_weight.h"

namespace flux2 {

// w [out, in] row-major, in % 16 == 0 -> canonical Nvfp4Weight (no input_scale).
Nvfp4Weight quantize_nvfp4_weight(const float* w, int64_t out, int64_t in);

}  // namespace flux2
