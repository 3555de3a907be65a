#pragma once
// A WeightSource that invents deterministic random values for whatever a model asks for and records them, so
// the model's own weight declarations produce a loadable checkpoint in its internal (diffusers/HF) names. Used for
// the demo model set (VAE, text encoder); the pictures such weights make are noise.
#include <cstdint>
#include <map>
#include <string>

#include "core/normal_rng.h"
#include "io/safetensors.h"
#include "models/weight_source.h"

namespace flux2 {

class RecordingRandomWeights : public WeightSource {
public:
    // nvfp4_linears: every linear is random NVFP4 (random codes, made directly: fast enough for 24B parameters),
    // written as a quantized checkpoint holds it (codes, 128x4-swizzled E4M3 block scales, weight_scale_2).
    explicit RecordingRandomWeights(uint64_t seed, bool nvfp4_linears = false)
        : rng_(seed), seed_(seed), nvfp4_linears_(nvfp4_linears) {}

    bool has(const std::string& name) const override { return true; }
    Shape shape_of(const std::string& name) const override;
    // Dense bf16 [out, in] with std 1/sqrt(in) (or NVFP4 with that spread, see the constructor).
    LinearWeight take_linear(const std::string& module, int64_t out_features, int64_t in_features) override;
    // Heuristics by name: "*running_var" in [0.5, 1.5); 1-D "*norm*.weight"/"*layernorm*" around 1; 1-D biases
    // and "*running_mean" small; everything else std 1/sqrt(fan_in) with fan_in = product of dims after the first.
    Tensor take_f32(const std::string& name, const Shape& expected) override;
    void finish() const override {}
    std::string describe() const override { return "random weights (recorded)"; }

    // All recorded tensors as bf16 (F32 for BatchNorm statistics; NVFP4 linears in their three tensors), plus
    // metadata.
    void write(const std::string& path) const;

private:
    NormalRng rng_;
    uint64_t seed_ = 0;
    bool nvfp4_linears_ = false;
    std::map<std::string, std::pair<Shape, std::vector<float>>> recorded_;
    std::map<std::string, LinearWeight> recorded_nvfp4_;  // by module name
};

}  // namespace flux2
