#include "models/text_encoder/decoder_random_weights.h"

#include <cmath>
#include <functional>

#include "core/error.h"
#include "models/random_fill.h"
#include "quant/nvfp4.h"

namespace flux2 {

Shape RandomDecoderWeights::shape_of(const std::string& name) const {
    fail("random weights carry no shapes to infer from (", name, "): pass the config explicitly");
}

LinearWeight RandomDecoderWeights::take_linear(const std::string& module, int64_t out, int64_t in) {
    LinearWeight w;
    w.name = module;
    const uint64_t layer_seed = seed_ ^ std::hash<std::string>{}(module);
    const float target_std = 1.0f / std::sqrt(static_cast<float>(in));
    switch (format_) {
        case WeightFormat::nvfp4:
            check(in % kNvfp4Block == 0, "random NVFP4 weights: ", module, " has in_features ", in,
                  ", not a multiple of ", kNvfp4Block);
            fill_random_nvfp4(w, out, in, layer_seed, target_std);
            break;
        case WeightFormat::fp8:
            fill_random_fp8(w, out, in, layer_seed, target_std);
            break;
        case WeightFormat::dense:
            fill_random_bf16(w, out, in, layer_seed, target_std);
            break;
    }
    ++linears_;
    return w;
}

Tensor RandomDecoderWeights::take_f32(const std::string& name, const Shape& expected) {
    Tensor t = Tensor::zeros(expected);
    const int64_t rows = expected.empty() ? 1 : expected[0];
    // Norm gains around 1; the embedding table (and anything 2-D) at the small spread trained tables have.
    const bool gain = expected.size() == 1;
    fill_random_uniform(t.f32(), rows, t.numel() / std::max<int64_t>(rows, 1), seed_ ^ std::hash<std::string>{}(name),
                        gain ? 1.0f : 0.0f, gain ? 0.05f : 0.02f);
    return t;
}

std::string RandomDecoderWeights::describe() const {
    return str("random weights (seed ", seed_, "): ", linears_, " ",
               format_ == WeightFormat::dense ? "bf16" : weight_format_name(format_), " linear layers");
}

}  // namespace flux2
