#include "models/lora/lora_synthetic.h"

#include <cmath>
#include <map>

#include "core/error.h"
#include "core/normal_rng.h"
#include "io/safetensors.h"
#include "models/lora/lora_fit.h"

namespace flux2 {

namespace {
// The module whose A a q/k/v module shares: its stream's to_q / add_q_proj.
std::string shared_a_owner(const std::string& module) {
    for (const char* s : {"attn.to_k", "attn.to_v"}) {
        if (module.ends_with(s)) return module.substr(0, module.size() - 1) + "q";
    }
    for (const char* s : {"attn.add_k_proj", "attn.add_v_proj"}) {
        if (module.ends_with(s)) return module.substr(0, module.size() - 6) + "q_proj";
    }
    return module;
}
}  // namespace

LoraAdapter synthetic_lora(const Flux2Config& config, int64_t rank, uint64_t seed) {
    check(rank > 0, "synthetic LoRA: rank must be positive, got ", rank);
    NormalRng rng(seed);
    LoraAdapter a;
    a.path = str("synthetic rank-", rank, " LoRA");
    a.formats = {LoraFormat::diffusers};
    std::map<std::string, std::shared_ptr<const std::vector<float>>> shared;
    // Sized so that scale * B A is small next to W (std ~1/sqrt(in)): the step's activations stay in range.
    for (const auto& [module, shape] : flux2_lora_targets(config)) {
        const auto [out, in] = shape;
        LoraTerm t;
        t.module = module;
        t.key = "synthetic." + module;
        t.rank = rank;
        t.in_features = in;
        t.out_features = out;
        auto& a_values = shared[shared_a_owner(module)];
        if (!a_values) {
            std::vector<float> v(static_cast<size_t>(rank * in));
            for (float& x : v) x = rng.normal() / std::sqrt(static_cast<float>(in));
            a_values = std::make_shared<const std::vector<float>>(std::move(v));
        }
        t.a = a_values;
        t.b.resize(static_cast<size_t>(out * rank));
        for (float& x : t.b) x = 0.1f * rng.normal() / std::sqrt(static_cast<float>(rank));
        a.layers.push_back(LoraLayer{module, {rank, in}, {out, rank}, static_cast<float>(rank), 1.0f, false, {module}});
        a.terms.push_back(std::move(t));
    }
    return a;
}

void write_lora_diffusers(const LoraAdapter& adapter, const std::string& path) {
    SafetensorsWriter w;
    for (const LoraTerm& t : adapter.terms) {
        const std::string stem = "transformer." + t.module;
        w.add_bf16(stem + ".lora_A.weight", {t.rank, t.in_features}, t.a->data());
        std::vector<float> b = t.b;
        for (float& v : b) v *= t.scale;
        w.add_bf16(stem + ".lora_B.weight", {t.out_features, t.rank}, b.data());
    }
    w.write(path);
}

}  // namespace flux2
