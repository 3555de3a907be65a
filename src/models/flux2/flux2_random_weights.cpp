#include "models/flux2/flux2_random_weights.h"

#include <cmath>
#include <functional>

#include "core/error.h"
#include "models/random_fill.h"
#include "quant/nvfp4.h"

namespace flux2 {

namespace {
bool is_nvfp4_layer(const std::string& module) {
    auto has = [&](const char* s) { return module.find(s) != std::string::npos; };
    if (module.rfind("single_transformer_blocks.", 0) == 0) return true;
    if (module.rfind("transformer_blocks.", 0) == 0)
        return has(".attn.to_q") || has(".attn.to_k") || has(".attn.to_v") || has(".attn.to_out") || has(".ff.") ||
               has(".ff_context.");
    return false;
}
}  // namespace

bool RandomFlux2Weights::has(const std::string& name) const {
    if (name.find("guidance_embedder") != std::string::npos) return config_.guidance_embeds;
    return true;
}

Shape RandomFlux2Weights::shape_of(const std::string& name) const {
    fail("random weights carry no shapes to infer from (", name, "): pass the config explicitly");
}

LinearWeight RandomFlux2Weights::take_linear(const std::string& module, int64_t out, int64_t in) {
    LinearWeight w;
    w.name = module;
    w.out_features = out;
    w.in_features = in;
    const uint64_t layer_seed = seed_ ^ std::hash<std::string>{}(module);
    const float target_std = 1.0f / std::sqrt(static_cast<float>(in));
    if (is_nvfp4_layer(module) && in % kNvfp4Block == 0) {
        ++nvfp4_layers_;
        fill_random_nvfp4(w, out, in, layer_seed, target_std);
    } else {
        ++bf16_layers_;
        const float gain = module.find("modulation") != std::string::npos || module == "norm_out.linear" ? 0.2f : 1.0f;
        fill_random_bf16(w, out, in, layer_seed, target_std * gain);
    }
    return w;
}

Tensor RandomFlux2Weights::take_f32(const std::string& name, const Shape& expected) {
    Tensor t = Tensor::zeros(expected);
    uint64_t s = seed_ ^ std::hash<std::string>{}(name);
    for (int64_t i = 0; i < t.numel(); ++i)
        t.f32()[i] = 1.0f + 0.2f * (static_cast<float>(splitmix64(s) >> 40) * 0x1.0p-24f - 0.5f);
    return t;
}

std::string RandomFlux2Weights::describe() const {
    return str("random weights (seed ", seed_, "): ", nvfp4_layers_, " nvfp4 / ", bf16_layers_, " bf16 linear layers");
}

}  // namespace flux2
