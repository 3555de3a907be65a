#pragma once
// Flux2Transformer2DModel hyper-parameters (FLUX2_SPEC.md §1.1): from config.json when the checkpoint has one,
// otherwise inferred from tensor shapes, so a bare BFL file of any size loads.
#include <array>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace flux2 {

class TransformerCheckpoint;
class WeightSource;

struct Flux2Config {
    int64_t in_channels = 128;
    int64_t out_channels = 128;
    int64_t num_layers = 8;           // double-stream blocks
    int64_t num_single_layers = 48;   // single-stream blocks
    int64_t attention_head_dim = 128;
    int64_t num_attention_heads = 48;
    int64_t joint_attention_dim = 15360;
    int64_t timestep_guidance_channels = 256;
    double mlp_ratio = 3.0;
    std::array<int64_t, 4> axes_dims_rope{32, 32, 32, 32};
    double rope_theta = 2000.0;
    float eps = 1e-6f;
    bool guidance_embeds = true;

    int64_t inner_dim() const { return attention_head_dim * num_attention_heads; }
    int64_t mlp_hidden() const { return static_cast<int64_t>(inner_dim() * mlp_ratio); }

    // Named real models: "dev", "klein-4b", "klein-9b".
    static Flux2Config preset(const std::string& name);
    static Flux2Config from_json(const nlohmann::json& j);
    static Flux2Config infer(const WeightSource& weights);
    // config.json when present (checked against the tensors by loading), else inferred.
    static Flux2Config for_checkpoint(const TransformerCheckpoint& ckpt);

    std::string summary() const;  // one line for the log
};

}  // namespace flux2
