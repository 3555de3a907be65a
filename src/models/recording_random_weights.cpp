#include "models/recording_random_weights.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/parallel.h"
#include "models/random_fill.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"

namespace flux2 {

Shape RecordingRandomWeights::shape_of(const std::string& name) const {
    auto it = recorded_.find(name);
    check(it != recorded_.end(), "random weights: '", name, "' has not been created yet");
    return it->second.first;
}

LinearWeight RecordingRandomWeights::take_linear(const std::string& module, int64_t out, int64_t in) {
    if (nvfp4_linears_ && in % kNvfp4Block == 0) {
        check(!recorded_nvfp4_.count(module) && !recorded_.count(module + ".weight"), "random weights: '", module,
              "' requested twice");
        LinearWeight lw;
        lw.name = module;
        fill_random_nvfp4(lw, out, in, seed_ ^ std::hash<std::string>{}(module),
                          1.0f / std::sqrt(static_cast<float>(in)));
        lw.nvfp4.input_scale.reset();  // dynamic activation scales, as comfy-kitchen's text encoder files
        recorded_nvfp4_[module] = lw;
        return lw;
    }
    Tensor w = take_f32(module + ".weight", {out, in});
    LinearWeight lw;
    lw.name = module;
    lw.out_features = out;
    lw.in_features = in;
    lw.format = WeightFormat::dense;
    lw.dense.dtype = DType::F32;
    lw.dense.bytes.resize(w.nbytes());
    std::memcpy(lw.dense.bytes.data(), w.f32(), w.nbytes());
    return lw;
}

Tensor RecordingRandomWeights::take_f32(const std::string& name, const Shape& expected) {
    check(!recorded_.count(name), "random weights: '", name, "' requested twice");
    const int64_t n = shape_numel(expected);
    int64_t fan_in = 1;
    for (size_t i = 1; i < expected.size(); ++i) fan_in *= expected[i];
    auto ends_with = [&](const char* s) { return name.size() >= std::strlen(s) && name.ends_with(s); };
    const bool is_stat = ends_with("running_var") || ends_with("running_mean");
    std::vector<float> v(n);
    fill_normal(v.data(), n, rng_.bits(), 0.0f, 1.0f);
    if (ends_with("running_var")) {
        for (auto& x : v) x = 0.5f + rng_.uniform();
    } else {
        const float mean = expected.size() == 1 && !ends_with("bias") && !is_stat ? 1.0f : 0.0f;
        const float stddev = ends_with("running_mean")                   ? 0.3f
                             : expected.size() == 1 && ends_with("bias") ? 0.02f
                             : expected.size() == 1                      ? 0.1f  // norm gains around 1
                                                                         : 1.0f / std::sqrt(static_cast<float>(fan_in));
        parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                v[i] = mean + stddev * v[i];
                if (!is_stat)
                    v[i] = bf16_to_f32(f32_to_bf16(v[i]));  // the file stores bf16: compute with what it holds
            }
        });
    }
    recorded_[name] = {expected, v};
    return Tensor::from_f32(expected, v);
}

void RecordingRandomWeights::write(const std::string& path) const {
    SafetensorsWriter w;
    for (const auto& [name, entry] : recorded_) {
        const bool is_stat = name.ends_with("running_var") || name.ends_with("running_mean");
        if (is_stat)
            w.add_f32(name, entry.first, entry.second.data());
        else
            w.add_bf16(name, entry.first, entry.second.data());
    }
    nlohmann::json layers = nlohmann::json::object();
    for (const auto& [module, lw] : recorded_nvfp4_) {
        const int64_t out = lw.out_features, in = lw.in_features;
        w.add(module + ".weight", DType::U8, {out, in / 2}, lw.nvfp4.codes.data(), lw.nvfp4.codes.size());
        const std::vector<uint8_t> swizzled = swizzle_scales(lw.nvfp4.scales.data(), out, in / kNvfp4Block);
        w.add(module + ".weight_scale", DType::F8_E4M3, {round_up(out, 128), round_up(in / kNvfp4Block, 4)},
              swizzled.data(), swizzled.size());
        w.add_f32(module + ".weight_scale_2", {}, &lw.nvfp4.weight_scale_2);
        layers[module] = {{"format", "nvfp4"}};
    }
    if (!recorded_nvfp4_.empty())
        w.set_metadata("_quantization_metadata", nlohmann::json{{"format_version", "1.0"}, {"layers", layers}}.dump());
    w.set_metadata("flux2cpp_synthetic", "random weights: images are noise");
    w.write(path);
}

}  // namespace flux2
