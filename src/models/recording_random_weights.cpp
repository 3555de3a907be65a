#include "models/recording_random_weights.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/float_codecs.h"

namespace flux2 {

Shape RecordingRandomWeights::shape_of(const std::string& name) const {
    auto it = recorded_.find(name);
    check(it != recorded_.end(), "random weights: '", name, "' has not been created yet");
    return it->second.first;
}

LinearWeight RecordingRandomWeights::take_linear(const std::string& module, int64_t out, int64_t in) {
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
        const float stddev = ends_with("running_mean")                ? 0.3f
                             : expected.size() == 1 && ends_with("bias") ? 0.02f
                             : expected.size() == 1                      ? 0.1f  // norm gains around 1
                                                                         : 1.0f / std::sqrt(static_cast<float>(fan_in));
        parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                v[i] = mean + stddev * v[i];
                if (!is_stat) v[i] = bf16_to_f32(f32_to_bf16(v[i]));  // the file stores bf16: compute with what it holds
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
        if (is_stat) w.add_f32(name, entry.first, entry.second.data());
        else w.add_bf16(name, entry.first, entry.second.data());
    }
    w.set_metadata("flux2cpp_synthetic", "random weights: images are noise");
    w.write(path);
}

}  // namespace flux2
