#include "quant/weight_conversion.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"
#include "quant/nvfp4_quantizer.h"

namespace flux2 {

WeightPrecision parse_weight_precision(const std::string& name, const std::string& flag) {
    if (name == "bf16" || name.empty()) return WeightPrecision::as_stored;
    if (name == "fp8") return WeightPrecision::fp8;
    if (name == "fp4" || name == "nvfp4") return WeightPrecision::fp4;
    fail(flag, " must be bf16 (the weights as stored), fp8 or fp4, got '", name, "'");
}

const char* weight_precision_name(WeightPrecision p) {
    switch (p) {
        case WeightPrecision::as_stored:
            return "as stored";
        case WeightPrecision::fp8:
            return "fp8 (E4M3, per output channel)";
        case WeightPrecision::fp4:
            return "nvfp4";
    }
    return "unknown";
}

LinearWeight convert_weight(LinearWeight w, WeightPrecision p, bool* converted) {
    if (converted) *converted = false;
    if (p == WeightPrecision::as_stored || w.format != WeightFormat::dense) return w;
    if (p == WeightPrecision::fp4 && w.in_features % kNvfp4Block != 0) return w;
    const std::vector<float> values = dequantize(w);
    const int64_t out = w.out_features, in = w.in_features;
    if (p == WeightPrecision::fp8) {
        w.fp8.codes.resize(values.size());
        w.fp8.row_scales.resize(static_cast<size_t>(out));
        for (int64_t n = 0; n < out; ++n) {
            const float* row = values.data() + n * in;
            float amax = 0.0f;
            for (int64_t k = 0; k < in; ++k) amax = std::max(amax, std::fabs(row[k]));
            const float scale = amax > 0.0f ? amax / 448.0f : 1.0f;  // an all-zero row: codes 0, any scale
            w.fp8.row_scales[static_cast<size_t>(n)] = scale;
            for (int64_t k = 0; k < in; ++k) w.fp8.codes[static_cast<size_t>(n * in + k)] = f32_to_e4m3(row[k] / scale);
        }
        w.format = WeightFormat::fp8;
    } else {
        w.nvfp4 = quantize_nvfp4_weight(values.data(), out, in);
        w.format = WeightFormat::nvfp4;
    }
    w.dense = DenseWeight{};
    w.prepared.reset();
    w.prepared_owner = 0;
    if (converted) *converted = true;
    return w;
}

}  // namespace flux2
