#pragma once
// AutoencoderKLFlux2 hyper-parameters (FLUX2_SPEC.md §3.1): from the diffusers vae/config.json when there is one,
// otherwise inferred from tensor shapes (BFL ae.safetensors carries no config).
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace flux2 {

class WeightSource;

struct VaeConfig {
    int64_t in_channels = 3;
    int64_t out_channels = 3;
    std::vector<int64_t> block_out_channels{128, 256, 512, 512};
    std::vector<int64_t> decoder_block_out_channels;  // empty = block_out_channels
    int64_t layers_per_block = 2;
    int64_t latent_channels = 32;
    int64_t norm_num_groups = 32;
    bool use_quant_conv = true;
    bool use_post_quant_conv = true;
    bool mid_block_add_attention = true;
    float batch_norm_eps = 1e-4f;
    std::vector<int64_t> patch_size{2, 2};

    // GroupNorm eps of every block; fixed in diffusers' Encoder/Decoder (resnet_eps, conv_norm_out), not configurable.
    static constexpr float kNormEps = 1e-6f;

    const std::vector<int64_t>& decoder_channels() const {
        return decoder_block_out_channels.empty() ? block_out_channels : decoder_block_out_channels;
    }
    // Spatial factor between images and latents: 2^(number of blocks - 1) (8 for FLUX.2).
    int64_t scale_factor() const { return int64_t{1} << (block_out_channels.size() - 1); }
    // Channels of the BatchNorm over patchified latents (128 for FLUX.2).
    int64_t batch_norm_channels() const { return patch_size[0] * patch_size[1] * latent_channels; }

    static VaeConfig from_json(const nlohmann::json& j);
    // norm_num_groups and batch_norm_eps are not visible in the weights and keep their FLUX.2 values.
    static VaeConfig infer(const WeightSource& weights);

    std::string summary() const;  // one line for the log
};

}  // namespace flux2
