#pragma once
// In-memory random FLUX.2 weights at any size (benchmarks at real dimensions without a 20 GB file): NVFP4 for
// the block linears of flux2-dev-nvfp4.safetensors (everything but txt_attn qkv/proj), bf16 elsewhere, in the
// canonical form the loader produces from BFL files. Deterministic for a seed; values sized like a trained
// layer (W std ~ 1/sqrt(in)), so activations stay in range.
#include <cstdint>
#include <set>
#include <string>

#include "models/flux2/flux2_config.h"
#include "models/weight_source.h"

namespace flux2 {

class RandomFlux2Weights : public WeightSource {
public:
    RandomFlux2Weights(const Flux2Config& config, uint64_t seed) : config_(config), seed_(seed) {}

    bool has(const std::string& name) const override;
    Shape shape_of(const std::string& name) const override;
    LinearWeight take_linear(const std::string& module, int64_t out_features, int64_t in_features) override;
    Tensor take_f32(const std::string& name, const Shape& expected) override;
    void finish() const override {}
    std::string describe() const override;

private:
    Flux2Config config_;
    uint64_t seed_;
    int64_t nvfp4_layers_ = 0, bf16_layers_ = 0;
};

}  // namespace flux2
