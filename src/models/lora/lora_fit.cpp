#include "models/lora/lora_fit.h"

#include <map>
#include <utility>

#include "core/error.h"

namespace flux2 {

std::map<std::string, std::pair<int64_t, int64_t>> flux2_lora_targets(const Flux2Config& c) {
    const int64_t D = c.inner_dim(), M = c.mlp_hidden(), T = c.timestep_guidance_channels;
    std::map<std::string, std::pair<int64_t, int64_t>> s{
        {"x_embedder", {D, c.in_channels}},
        {"context_embedder", {D, c.joint_attention_dim}},
        {"time_guidance_embed.timestep_embedder.linear_1", {D, T}},
        {"time_guidance_embed.timestep_embedder.linear_2", {D, D}},
        {"double_stream_modulation_img.linear", {6 * D, D}},
        {"double_stream_modulation_txt.linear", {6 * D, D}},
        {"single_stream_modulation.linear", {3 * D, D}},
        {"norm_out.linear", {2 * D, D}},
        {"proj_out", {c.out_channels, D}},
    };
    if (c.guidance_embeds) {
        s["time_guidance_embed.guidance_embedder.linear_1"] = {D, T};
        s["time_guidance_embed.guidance_embedder.linear_2"] = {D, D};
    }
    for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string p = str("transformer_blocks.", i, ".");
        for (const char* m : {"attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj",
                              "attn.add_k_proj", "attn.add_v_proj", "attn.to_add_out"}) {
            s[p + m] = {D, D};
        }
        s[p + "ff.linear_in"] = s[p + "ff_context.linear_in"] = {2 * M, D};
        s[p + "ff.linear_out"] = s[p + "ff_context.linear_out"] = {D, M};
    }
    for (int64_t i = 0; i < c.num_single_layers; ++i) {
        const std::string p = str("single_transformer_blocks.", i, ".attn.");
        s[p + "to_qkv_mlp_proj"] = {3 * D + 2 * M, D};
        s[p + "to_out"] = {D, D + M};
    }
    return s;
}

std::optional<std::string> lora_misfit(const LoraAdapter& adapter, const Flux2Config& config) {
    const auto shapes = flux2_lora_targets(config);
    for (const LoraTerm& t : adapter.terms) {
        auto it = shapes.find(t.module);
        if (it == shapes.end()) return str(t.key, " targets ", t.module, ", which it does not have");
        const auto [out, in] = it->second;
        if (t.out_features != out || t.in_features != in) {
            return str(t.key, " gives ", t.module, " [", t.out_features, ", ", t.in_features, "], the model's is [",
                       out, ", ", in, "]");
        }
    }
    return std::nullopt;
}

}  // namespace flux2
