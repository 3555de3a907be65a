#pragma once
// Flux2Transformer2DModel hyper-parameters (FLUX2_SPEC.md §1.1): from config.json when the checkpoint has one,
// otherwise inferred from tensor shapes, so a bare BFL file of any size loads.
#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
    // The MLP width read from tensor shapes; 0 = int(inner_dim * mlp_ratio), as diffusers computes it from
    // config.json. Inferred widths never go through the ratio: D * ((D + M - D) / D) truncates to M - 1 for
    // about 4% of (D, M) pairs.
    int64_t mlp_hidden_dim = 0;
    std::array<int64_t, 4> axes_dims_rope{32, 32, 32, 32};
    double rope_theta = 2000.0;
    float eps = 1e-6f;
    bool guidance_embeds = true;

    int64_t inner_dim() const { return attention_head_dim * num_attention_heads; }
    int64_t mlp_hidden() const {
        return mlp_hidden_dim > 0 ? mlp_hidden_dim : static_cast<int64_t>(inner_dim() * mlp_ratio);
    }

    // Named real models: "dev", "klein-4b", "klein-9b".
    static Flux2Config preset(const std::string& name);
    // `origin` (the file) starts every error message.
    static Flux2Config from_json(const nlohmann::json& j, const std::string& origin = "config.json");
    static Flux2Config infer(const WeightSource& weights);
    // config.json when present, else inferred. The sizes of a config.json are compared with the tensors' and
    // every difference is logged as a warning (loading then fails on the shapes); RoPE axes, theta and eps cannot
    // be read from tensors, so without a config.json they are FLUX.2's, which the log says.
    static Flux2Config for_checkpoint(const TransformerCheckpoint& ckpt);

    // "dev", "klein-4B" or "klein-9B" when the sizes are those of a released model, else "custom".
    std::string architecture_name() const;
    // Sizes that differ between two configs ("num_layers 8 vs 5"), empty when all agree.
    std::vector<std::string> size_differences(const Flux2Config& other) const;
    std::string summary() const;  // one line for the log, RoPE axes, theta and eps included
};

}  // namespace flux2
