#pragma once
// Binds a FLUX.2 VAE checkpoint to internal (diffusers) names: a diffusers `vae/` folder (config.json +
// diffusion_pytorch_model.safetensors) or its safetensors file, or BFL's `ae.safetensors`, whose names are
// converted as in diffusers' convert_flux2_to_diffusers.py (FLUX2_SPEC.md §3.4).
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>

#include "io/checkpoint.h"
#include "models/weight_source.h"

namespace flux2 {

// The diffusers name of a BFL autoencoder tensor (unchanged if it is not a BFL name). num_up_blocks is needed
// because BFL numbers the decoder's up blocks in the opposite order.
std::string vae_name_from_bfl(const std::string& bfl_name, int num_up_blocks);

class VaeCheckpoint : public WeightSource {
public:
    static VaeCheckpoint open(const std::string& path);

    // The diffusers config.json next to the weights, if any.
    const std::optional<nlohmann::json>& config() const { return config_; }
    bool is_bfl_layout() const { return bfl_; }

    bool has(const std::string& name) const override;
    Shape shape_of(const std::string& name) const override;  // as stored
    // Linear layers with bias of the mid-block attention: accepts [out, in] (diffusers) and the 1x1-conv shape
    // [out, in, 1, 1] of BFL files. Returned dense in F32.
    LinearWeight take_linear(const std::string& module, int64_t out_features, int64_t in_features) override;
    Tensor take_f32(const std::string& name, const Shape& expected) override;
    // Throws listing every tensor no take_* call claimed (bn.num_batches_tracked is bookkeeping and ignored).
    void finish() const override;
    std::string describe() const override;

private:
    const TensorInfo& get(const std::string& name) const;

    Checkpoint ckpt_;
    bool bfl_ = false;
    std::optional<nlohmann::json> config_;
    std::map<std::string, const TensorInfo*> by_name_;  // internal name -> checkpoint tensor
    mutable std::set<std::string> claimed_;
};

}  // namespace flux2
