#include "models/flux2/flux2_config.h"

#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "models/transformer_checkpoint.h"

namespace flux2 {

Flux2Config Flux2Config::preset(const std::string& name) {
    Flux2Config c;  // defaults are FLUX.2-dev
    if (name == "dev") return c;
    if (name == "klein-4b") {
        c.num_layers = 5;
        c.num_single_layers = 20;
        c.num_attention_heads = 24;
        c.joint_attention_dim = 7680;
        c.guidance_embeds = false;
        return c;
    }
    if (name == "klein-9b") {
        c.num_layers = 8;
        c.num_single_layers = 24;
        c.num_attention_heads = 32;
        c.joint_attention_dim = 12288;
        c.guidance_embeds = false;
        return c;
    }
    fail("unknown model preset '", name, "' (expected dev, klein-4b or klein-9b)");
}

Flux2Config Flux2Config::from_json(const nlohmann::json& j, const std::string& origin) {
    Flux2Config c;
    auto get_int = [&](const char* key, int64_t& out) {
        if (j.contains(key) && !j[key].is_null()) out = j[key].get<int64_t>();
    };
    try {
        check(j.value("patch_size", 1) == 1, origin, ": patch_size ", j.value("patch_size", 1),
              " is not supported (FLUX.2 uses 1)");
        get_int("in_channels", c.in_channels);
        c.out_channels = c.in_channels;
        get_int("out_channels", c.out_channels);
        get_int("num_layers", c.num_layers);
        get_int("num_single_layers", c.num_single_layers);
        get_int("attention_head_dim", c.attention_head_dim);
        get_int("num_attention_heads", c.num_attention_heads);
        get_int("joint_attention_dim", c.joint_attention_dim);
        get_int("timestep_guidance_channels", c.timestep_guidance_channels);
        if (j.contains("mlp_ratio")) c.mlp_ratio = j["mlp_ratio"].get<double>();
        if (j.contains("axes_dims_rope")) {
            auto axes = j["axes_dims_rope"].get<std::vector<int64_t>>();
            check(axes.size() == 4, origin, ": axes_dims_rope must have 4 entries, has ", axes.size());
            for (int i = 0; i < 4; ++i) c.axes_dims_rope[i] = axes[i];
        }
        if (j.contains("rope_theta")) c.rope_theta = j["rope_theta"].get<double>();
        if (j.contains("eps")) c.eps = j["eps"].get<float>();
        if (j.contains("guidance_embeds")) c.guidance_embeds = j["guidance_embeds"].get<bool>();
    } catch (const nlohmann::json::exception& e) {
        fail(origin, ": ", e.what());
    }
    int64_t rope_sum = 0;
    for (int64_t a : c.axes_dims_rope) rope_sum += a;
    check(rope_sum == c.attention_head_dim, origin, ": axes_dims_rope sum to ", rope_sum, " but attention_head_dim is ",
          c.attention_head_dim);
    return c;
}

Flux2Config Flux2Config::infer(const WeightSource& ckpt) {
    Flux2Config c;
    c.num_layers = 0;
    while (ckpt.has(str("transformer_blocks.", c.num_layers, ".attn.norm_q.weight"))) ++c.num_layers;
    c.num_single_layers = 0;
    while (ckpt.has(str("single_transformer_blocks.", c.num_single_layers, ".attn.norm_q.weight")))
        ++c.num_single_layers;
    // Either block kind may be absent (pruned models); the head dim and MLP width come from one that is there.
    const bool single = c.num_single_layers > 0 || c.num_layers == 0;
    const std::string block = single ? "single_transformer_blocks.0.attn." : "transformer_blocks.0.";
    const Shape x_emb = ckpt.shape_of("x_embedder.weight");  // [D, in_channels]
    const Shape ctx_emb = ckpt.shape_of("context_embedder.weight");
    const Shape norm_q = ckpt.shape_of(block + (single ? "norm_q.weight" : "attn.norm_q.weight"));
    const Shape proj_out = ckpt.shape_of("proj_out.weight");
    const Shape t_in = ckpt.shape_of("time_guidance_embed.timestep_embedder.linear_1.weight");
    // Single blocks: to_out [D, D + M]; double blocks: ff.linear_out [D, M].
    const Shape mlp_out = ckpt.shape_of(block + (single ? "to_out.weight" : "ff.linear_out.weight"));
    const int64_t D = x_emb[0];
    c.in_channels = x_emb[1];
    c.joint_attention_dim = ctx_emb[1];
    c.attention_head_dim = norm_q[0];
    check(c.attention_head_dim > 0 && D % c.attention_head_dim == 0, "inner dim ", D,
          " is not a multiple of the head dim ", c.attention_head_dim);
    c.num_attention_heads = D / c.attention_head_dim;
    c.out_channels = proj_out[0];
    c.timestep_guidance_channels = t_in[1];
    c.mlp_hidden_dim = single ? mlp_out[1] - D : mlp_out[1];
    check(c.mlp_hidden_dim > 0, "MLP width ", c.mlp_hidden_dim, " read from the tensor shapes is not positive");
    c.mlp_ratio = static_cast<double>(c.mlp_hidden_dim) / D;
    c.guidance_embeds = ckpt.has("time_guidance_embed.guidance_embedder.linear_1.weight");
    check(c.attention_head_dim % 8 == 0, "head dim ", c.attention_head_dim,
          " cannot be split into 4 RoPE axes of even size");
    // FLUX.2 splits the head dim evenly over the 4 position axes (t, h, w, l).
    c.axes_dims_rope.fill(c.attention_head_dim / 4);
    return c;
}

std::string Flux2Config::architecture_name() const {
    for (const auto& [preset_name, name] :
         {std::pair{"dev", "dev"}, {"klein-4b", "klein-4B"}, {"klein-9b", "klein-9B"}}) {
        if (size_differences(preset(preset_name)).empty()) return name;
    }
    return "custom";
}

std::vector<std::string> Flux2Config::size_differences(const Flux2Config& o) const {
    std::vector<std::string> out;
    auto cmp = [&](const char* key, int64_t a, int64_t b) {
        if (a != b) out.push_back(str(key, " ", a, " vs ", b));
    };
    cmp("in_channels", in_channels, o.in_channels);
    cmp("out_channels", out_channels, o.out_channels);
    cmp("num_layers", num_layers, o.num_layers);
    cmp("num_single_layers", num_single_layers, o.num_single_layers);
    cmp("attention_head_dim", attention_head_dim, o.attention_head_dim);
    cmp("num_attention_heads", num_attention_heads, o.num_attention_heads);
    cmp("joint_attention_dim", joint_attention_dim, o.joint_attention_dim);
    cmp("timestep_guidance_channels", timestep_guidance_channels, o.timestep_guidance_channels);
    cmp("MLP width", mlp_hidden(), o.mlp_hidden());
    cmp("guidance_embeds", guidance_embeds, o.guidance_embeds);
    return out;
}

Flux2Config Flux2Config::for_checkpoint(const TransformerCheckpoint& ckpt) {
    if (!ckpt.config()) {
        log_info("transformer: no config.json beside the weights; sizes are read from the tensors, RoPE axes, theta ",
                 "and eps are FLUX.2's defaults");
        return infer(ckpt);
    }
    const Flux2Config c = from_json(*ckpt.config(), ckpt.config_path());
    std::optional<Flux2Config> inferred;
    try {
        inferred = infer(ckpt);
    } catch (const Error&) {
        // The tensors will be checked by loading, which names what is missing.
    }
    if (inferred) {
        const std::vector<std::string> diffs = c.size_differences(*inferred);
        std::string list;
        for (const std::string& d : diffs) list += str(list.empty() ? "" : ", ", d);
        if (!diffs.empty()) {
            log_warn("transformer: ", ckpt.config_path(), " does not match the tensors (config.json vs tensors: ", list,
                     "); the file will not load with this config.json");
        }
    }
    log_info("transformer: hyper-parameters from ", ckpt.config_path());
    return c;
}

std::string Flux2Config::summary() const {
    return str("FLUX.2 transformer: D ", inner_dim(), " (", num_attention_heads, " heads x ", attention_head_dim, "), ",
               num_layers, " double + ", num_single_layers, " single blocks, MLP ", mlp_hidden(), ", context ",
               joint_attention_dim, ", guidance embedding ", guidance_embeds ? "on" : "off", ", RoPE axes ",
               axes_dims_rope[0], "/", axes_dims_rope[1], "/", axes_dims_rope[2], "/", axes_dims_rope[3], " theta ",
               rope_theta, ", eps ", eps);
}

}  // namespace flux2
