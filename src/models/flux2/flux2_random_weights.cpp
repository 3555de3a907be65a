#include "models/flux2/flux2_random_weights.h"

#include <cmath>
#include <functional>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"

namespace flux2 {

namespace {
uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Rows are generated independently (seeded by layer and row), so the fill parallelizes and is reproducible.
void fill_rows(int64_t rows, uint64_t layer_seed, const std::function<void(int64_t, uint64_t&)>& fill_row) {
    parallel_for(rows, 64, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            uint64_t state = layer_seed ^ (static_cast<uint64_t>(r) * 0xD1B54A32D192ED03ull);
            fill_row(r, state);
        }
    });
}

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
        w.format = WeightFormat::nvfp4;
        w.nvfp4.codes.resize(out * in / 2);
        w.nvfp4.scales.resize(out * in / kNvfp4Block);
        fill_rows(out, layer_seed, [&](int64_t r, uint64_t& s) {
            uint8_t* codes = w.nvfp4.codes.data() + r * in / 2;
            for (int64_t i = 0; i < in / 2; i += 8) {
                const uint64_t bits = splitmix64(s);
                for (int64_t j = 0; j < 8 && i + j < in / 2; ++j) codes[i + j] = static_cast<uint8_t>(bits >> (8 * j));
            }
            uint8_t* scales = w.nvfp4.scales.data() + r * in / kNvfp4Block;
            for (int64_t b = 0; b < in / kNvfp4Block; ++b)  // block scales spread over [0.5, 2)
                scales[b] = f32_to_e4m3(0.5f + 1.5f * static_cast<float>(splitmix64(s) >> 40) * 0x1.0p-24f);
        });
        // Uniform E2M1 codes have an RMS of ~2.93 and the block scales average ~1.25.
        w.nvfp4.weight_scale_2 = target_std / (2.93f * 1.25f);
        w.nvfp4.input_scale = 8.0f / (kE4m3Max * kE2m1Max);
    } else {
        ++bf16_layers_;
        w.format = WeightFormat::dense;
        w.dense.dtype = DType::BF16;
        w.dense.bytes.resize(out * in * 2);
        const float gain = module.find("modulation") != std::string::npos || module == "norm_out.linear" ? 0.2f : 1.0f;
        fill_rows(out, layer_seed, [&](int64_t r, uint64_t& s) {
            auto* row = reinterpret_cast<uint16_t*>(w.dense.bytes.data()) + r * in;
            for (int64_t i = 0; i < in; ++i) {  // uniform in [-sqrt(3), sqrt(3)) * std has the wanted std
                const float u = static_cast<float>(splitmix64(s) >> 40) * 0x1.0p-24f * 2.0f - 1.0f;
                row[i] = f32_to_bf16(u * 1.7320508f * target_std * gain);
            }
        });
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
