// Flux2Vae: binding every weight of the configured encoder and decoder (diffusers module names).
#include "core/error.h"
#include "core/log.h"
#include "models/vae/vae.h"
#include "models/vae/vae_checkpoint.h"
#include "models/weight_source.h"

namespace flux2 {

Flux2Vae::Conv Flux2Vae::load_conv(WeightSource& w, const std::string& name, int64_t cout, int64_t cin, int64_t k,
                                   int stride, int padding) {
    Conv c;
    c.weight = backend_->upload(w.take_f32(name + ".weight", {cout, cin, k, k}));
    c.bias = backend_->upload(w.take_f32(name + ".bias", {cout}));
    c.stride = stride;
    c.padding = padding;
    return c;
}

Flux2Vae::Norm Flux2Vae::load_norm(WeightSource& w, const std::string& name, int64_t channels) {
    return Norm{backend_->upload(w.take_f32(name + ".weight", {channels})),
                backend_->upload(w.take_f32(name + ".bias", {channels}))};
}

Flux2Vae::Resnet Flux2Vae::load_resnet(WeightSource& w, const std::string& name, int64_t cin, int64_t cout) {
    Resnet r;
    r.norm1 = load_norm(w, name + ".norm1", cin);
    r.conv1 = load_conv(w, name + ".conv1", cout, cin, 3, 1, 1);
    r.norm2 = load_norm(w, name + ".norm2", cout);
    r.conv2 = load_conv(w, name + ".conv2", cout, cout, 3, 1, 1);
    if (cin != cout) r.shortcut = load_conv(w, name + ".conv_shortcut", cout, cin, 1, 1, 0);
    return r;
}

Flux2Vae::Attention Flux2Vae::load_attention(WeightSource& w, const std::string& name, int64_t channels) {
    Attention a;
    a.norm = load_norm(w, name + ".group_norm", channels);
    auto linear = [&](const std::string& module, LinearWeight& weight, Tensor& bias) {
        weight = w.take_linear(name + "." + module, channels, channels);
        bias = backend_->upload(w.take_f32(name + "." + module + ".bias", {channels}));
    };
    linear("to_q", a.to_q, a.q_bias);
    linear("to_k", a.to_k, a.k_bias);
    linear("to_v", a.to_v, a.v_bias);
    linear("to_out.0", a.to_out, a.out_bias);
    return a;
}

Flux2Vae::Mid Flux2Vae::load_mid(WeightSource& w, const std::string& name, int64_t channels) {
    Mid m;
    m.first = load_resnet(w, name + ".resnets.0", channels, channels);
    if (config_.mid_block_add_attention) m.attention = load_attention(w, name + ".attentions.0", channels);
    m.second = load_resnet(w, name + ".resnets.1", channels, channels);
    return m;
}

Flux2Vae Flux2Vae::load(const std::string& path, Backend& backend) {
    VaeCheckpoint ckpt = VaeCheckpoint::open(path);
    const VaeConfig config = ckpt.config() ? VaeConfig::from_json(*ckpt.config()) : VaeConfig::infer(ckpt);
    return load(ckpt, config, backend);
}

Flux2Vae Flux2Vae::load(WeightSource& w, const VaeConfig& c, Backend& backend) {
    log_info(c.summary());
    Flux2Vae v;
    v.config_ = c;
    v.backend_ = &backend;
    const int64_t blocks = static_cast<int64_t>(c.block_out_channels.size()), latent = c.latent_channels;

    const std::vector<int64_t>& enc = c.block_out_channels;
    v.enc_conv_in_ = v.load_conv(w, "encoder.conv_in", enc[0], c.in_channels, 3, 1, 1);
    int64_t channels = enc[0];
    for (int64_t i = 0; i < blocks; ++i) {
        Stage s;
        for (int64_t j = 0; j < c.layers_per_block; ++j) {
            s.resnets.push_back(v.load_resnet(w, str("encoder.down_blocks.", i, ".resnets.", j), channels, enc[i]));
            channels = enc[i];
        }
        // Downsample2D with padding 0: the forward pads (0, 1, 0, 1) itself before this stride-2 conv.
        if (i + 1 < blocks)
            s.resample =
                v.load_conv(w, str("encoder.down_blocks.", i, ".downsamplers.0.conv"), channels, channels, 3, 2, 0);
        v.down_.push_back(std::move(s));
    }
    v.enc_mid_ = v.load_mid(w, "encoder.mid_block", channels);
    v.enc_norm_out_ = v.load_norm(w, "encoder.conv_norm_out", channels);
    v.enc_conv_out_ = v.load_conv(w, "encoder.conv_out", 2 * latent, channels, 3, 1, 1);
    if (c.use_quant_conv) v.quant_conv_ = v.load_conv(w, "quant_conv", 2 * latent, 2 * latent, 1, 1, 0);

    const std::vector<int64_t> dec(c.decoder_channels().rbegin(), c.decoder_channels().rend());  // widest first
    if (c.use_post_quant_conv) v.post_quant_conv_ = v.load_conv(w, "post_quant_conv", latent, latent, 1, 1, 0);
    v.dec_conv_in_ = v.load_conv(w, "decoder.conv_in", dec[0], latent, 3, 1, 1);
    v.dec_mid_ = v.load_mid(w, "decoder.mid_block", dec[0]);
    channels = dec[0];
    for (int64_t i = 0; i < blocks; ++i) {
        Stage s;
        for (int64_t j = 0; j < c.layers_per_block + 1; ++j) {
            s.resnets.push_back(v.load_resnet(w, str("decoder.up_blocks.", i, ".resnets.", j), channels, dec[i]));
            channels = dec[i];
        }
        if (i + 1 < blocks)
            s.resample =
                v.load_conv(w, str("decoder.up_blocks.", i, ".upsamplers.0.conv"), channels, channels, 3, 1, 1);
        v.up_.push_back(std::move(s));
    }
    v.dec_norm_out_ = v.load_norm(w, "decoder.conv_norm_out", channels);
    v.dec_conv_out_ = v.load_conv(w, "decoder.conv_out", c.out_channels, channels, 3, 1, 1);

    // The BatchNorm statistics stay on the host: the pipeline applies them to latents it holds there.
    const int64_t bn = c.batch_norm_channels();
    v.batch_norm_ =
        LatentBatchNorm{w.take_f32("bn.running_mean", {bn}), w.take_f32("bn.running_var", {bn}), c.batch_norm_eps};
    w.finish();
    return v;
}

}  // namespace flux2
