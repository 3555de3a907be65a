#include "models/vae/vae_config.h"

#include <sstream>

#include "core/error.h"
#include "models/weight_source.h"

namespace flux2 {

namespace {
std::string join(const std::vector<int64_t>& v) {
    std::ostringstream os;
    for (size_t i = 0; i < v.size(); ++i) os << (i ? "," : "") << v[i];
    return os.str();
}

void validate(const VaeConfig& c, const std::string& origin) {
    check(!c.block_out_channels.empty(), origin, ": block_out_channels is empty");
    check(c.decoder_channels().size() == c.block_out_channels.size(), origin, ": decoder_block_out_channels has ",
          c.decoder_channels().size(), " entries, block_out_channels ", c.block_out_channels.size());
    for (const auto* list : {&c.block_out_channels, &c.decoder_channels()})
        for (int64_t ch : *list)
            check(ch > 0 && ch % c.norm_num_groups == 0, origin, ": block width ", ch,
                  " is not a positive multiple of norm_num_groups ", c.norm_num_groups);
    check(c.layers_per_block > 0 && c.latent_channels > 0 && c.in_channels > 0 && c.out_channels > 0, origin,
          ": layers_per_block, latent_channels, in_channels and out_channels must be positive");
    check(c.patch_size.size() == 2 && c.patch_size[0] == 2 && c.patch_size[1] == 2, origin, ": patch_size [",
          join(c.patch_size), "] is not supported (FLUX.2 uses [2, 2])");
    check(c.batch_norm_eps > 0, origin, ": batch_norm_eps must be positive");
}
}  // namespace

VaeConfig VaeConfig::from_json(const nlohmann::json& j) {
    VaeConfig c;
    try {
        auto get_int = [&](const char* key, int64_t& out) {
            if (j.contains(key) && !j[key].is_null()) out = j[key].get<int64_t>();
        };
        auto get_list = [&](const char* key, std::vector<int64_t>& out) {
            if (j.contains(key) && !j[key].is_null()) out = j[key].get<std::vector<int64_t>>();
        };
        auto get_bool = [&](const char* key, bool& out) {
            if (j.contains(key) && !j[key].is_null()) out = j[key].get<bool>();
        };
        get_int("in_channels", c.in_channels);
        get_int("out_channels", c.out_channels);
        get_list("block_out_channels", c.block_out_channels);
        get_list("decoder_block_out_channels", c.decoder_block_out_channels);
        get_int("layers_per_block", c.layers_per_block);
        get_int("latent_channels", c.latent_channels);
        get_int("norm_num_groups", c.norm_num_groups);
        get_bool("use_quant_conv", c.use_quant_conv);
        get_bool("use_post_quant_conv", c.use_post_quant_conv);
        get_bool("mid_block_add_attention", c.mid_block_add_attention);
        if (j.contains("batch_norm_eps")) c.batch_norm_eps = j["batch_norm_eps"].get<float>();
        get_list("patch_size", c.patch_size);
        if (j.contains("act_fn"))
            check(j["act_fn"] == "silu", "vae config.json: act_fn ", j["act_fn"].dump(), " is not supported (silu)");
        const size_t blocks = c.block_out_channels.size();
        for (const char* key : {"down_block_types", "up_block_types"}) {
            if (!j.contains(key)) continue;
            const auto types = j[key].get<std::vector<std::string>>();
            const std::string expected = key[0] == 'd' ? "DownEncoderBlock2D" : "UpDecoderBlock2D";
            check(types.size() == blocks, "vae config.json: ", key, " has ", types.size(), " entries for ", blocks,
                  " blocks");
            for (const auto& t : types)
                check(t == expected, "vae config.json: ", key, " entry '", t, "' is not supported (", expected, ")");
        }
    } catch (const nlohmann::json::exception& e) {
        fail("vae config.json: ", e.what());
    }
    validate(c, "vae config.json");
    return c;
}

VaeConfig VaeConfig::infer(const WeightSource& w) {
    VaeConfig c;
    auto dim = [&](const std::string& name, int i) {
        check(w.has(name), w.describe(), ": cannot infer the VAE configuration, tensor ", name, " is missing");
        return w.shape_of(name).at(i);
    };
    c.block_out_channels.clear();
    for (int i = 0; w.has(str("encoder.down_blocks.", i, ".resnets.0.conv2.weight")); ++i)
        c.block_out_channels.push_back(dim(str("encoder.down_blocks.", i, ".resnets.0.conv2.weight"), 0));
    check(!c.block_out_channels.empty(), w.describe(), ": no encoder blocks found; is this a VAE checkpoint?");
    std::vector<int64_t> decoder;
    for (int i = static_cast<int>(c.block_out_channels.size()) - 1; i >= 0; --i)
        decoder.push_back(dim(str("decoder.up_blocks.", i, ".resnets.0.conv2.weight"), 0));
    if (decoder != c.block_out_channels) c.decoder_block_out_channels = decoder;
    c.layers_per_block = 0;
    while (w.has(str("encoder.down_blocks.0.resnets.", c.layers_per_block, ".conv1.weight"))) ++c.layers_per_block;
    c.in_channels = dim("encoder.conv_in.weight", 1);
    c.out_channels = dim("decoder.conv_out.weight", 0);
    c.latent_channels = dim("decoder.conv_in.weight", 1);
    c.use_quant_conv = w.has("quant_conv.weight");
    c.use_post_quant_conv = w.has("post_quant_conv.weight");
    c.mid_block_add_attention = w.has("decoder.mid_block.attentions.0.to_q.weight");
    validate(c, w.describe());
    return c;
}

std::string VaeConfig::summary() const {
    return str("VAE: blocks [", join(block_out_channels), "]",
               decoder_block_out_channels.empty() ? "" : str(" decoder [", join(decoder_block_out_channels), "]"), ", ",
               layers_per_block, " resnets/block, ", latent_channels, " latent channels, GroupNorm ", norm_num_groups,
               mid_block_add_attention ? ", mid attention" : "", ", bn eps ", batch_norm_eps);
}

}  // namespace flux2
