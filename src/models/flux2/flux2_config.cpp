#include "models/flux2/flux2_config.h"

#include "core/error.h"
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

Flux2Config Flux2Config::from_json(const nlohmann::json& j) {
    Flux2Config c;
    auto get_int = [&](const char* key, int64_t& out) {
        if (j.contains(key) && !j[key].is_null()) out = j[key].get<int64_t>();
    };
    try {
        check(j.value("patch_size", 1) == 1, "config.json: patch_size ", j.value("patch_size", 1),
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
            check(axes.size() == 4, "config.json: axes_dims_rope must have 4 entries, has ", axes.size());
            for (int i = 0; i < 4; ++i) c.axes_dims_rope[i] = axes[i];
        }
        if (j.contains("rope_theta")) c.rope_theta = j["rope_theta"].get<double>();
        if (j.contains("eps")) c.eps = j["eps"].get<float>();
        if (j.contains("guidance_embeds")) c.guidance_embeds = j["guidance_embeds"].get<bool>();
    } catch (const nlohmann::json::exception& e) {
        fail("config.json: ", e.what());
    }
    int64_t rope_sum = 0;
    for (int64_t a : c.axes_dims_rope) rope_sum += a;
    check(rope_sum == c.attention_head_dim, "config.json: axes_dims_rope sum to ", rope_sum,
          " but attention_head_dim is ", c.attention_head_dim);
    return c;
}

Flux2Config Flux2Config::infer(const WeightSource& ckpt) {
    Flux2Config c;
    const Shape x_emb = ckpt.shape_of("x_embedder.weight");  // [D, in_channels]
    const Shape ctx_emb = ckpt.shape_of("context_embedder.weight");
    const Shape norm_q = ckpt.shape_of("single_transformer_blocks.0.attn.norm_q.weight");
    const Shape proj_out = ckpt.shape_of("proj_out.weight");
    const Shape t_in = ckpt.shape_of("time_guidance_embed.timestep_embedder.linear_1.weight");
    const Shape to_out = ckpt.shape_of("single_transformer_blocks.0.attn.to_out.weight");  // [D, D + M]
    const int64_t D = x_emb[0];
    c.in_channels = x_emb[1];
    c.joint_attention_dim = ctx_emb[1];
    c.attention_head_dim = norm_q[0];
    check(D % c.attention_head_dim == 0, "inner dim ", D, " is not a multiple of the head dim ", c.attention_head_dim);
    c.num_attention_heads = D / c.attention_head_dim;
    c.out_channels = proj_out[0];
    c.timestep_guidance_channels = t_in[1];
    c.mlp_ratio = static_cast<double>(to_out[1] - D) / D;
    c.guidance_embeds = ckpt.has("time_guidance_embed.guidance_embedder.linear_1.weight");
    c.num_layers = 0;
    while (ckpt.has(str("transformer_blocks.", c.num_layers, ".attn.norm_q.weight"))) ++c.num_layers;
    c.num_single_layers = 0;
    while (ckpt.has(str("single_transformer_blocks.", c.num_single_layers, ".attn.norm_q.weight")))
        ++c.num_single_layers;
    check(c.attention_head_dim % 8 == 0, "head dim ", c.attention_head_dim,
          " cannot be split into 4 RoPE axes of even size");
    // FLUX.2 splits the head dim evenly over the 4 position axes (t, h, w, l).
    c.axes_dims_rope.fill(c.attention_head_dim / 4);
    return c;
}

Flux2Config Flux2Config::for_checkpoint(const TransformerCheckpoint& ckpt) {
    if (ckpt.config()) return from_json(*ckpt.config());
    return infer(ckpt);
}

std::string Flux2Config::summary() const {
    return str("FLUX.2 transformer: D ", inner_dim(), " (", num_attention_heads, " heads x ", attention_head_dim,
               "), ", num_layers, " double + ", num_single_layers, " single blocks, MLP ", mlp_hidden(),
               ", context ", joint_attention_dim, ", guidance embedding ", guidance_embeds ? "on" : "off");
}

}  // namespace flux2
