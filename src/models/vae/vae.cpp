// Flux2Vae forward passes (diffusers Encoder / Decoder of AutoencoderKLFlux2, FLUX2_SPEC.md §3.2-3.3).
#include "models/vae/vae.h"

#include "core/error.h"

namespace flux2 {

Tensor Flux2Vae::forward_conv(const Conv& c, const Tensor& x) const {
    return backend_->conv2d(x, c.weight, c.bias, c.stride, c.padding);
}

Tensor Flux2Vae::forward_resnet(const Resnet& r, const Tensor& x) const {
    // x [B, Cin, H, W] -> [B, Cout, H, W]: shortcut(x) + conv2(silu(gn2(conv1(silu(gn1(x))))))
    Backend& be = *backend_;
    const int groups = static_cast<int>(config_.norm_num_groups);
    Tensor h = be.group_norm(x, groups, r.norm1.weight, r.norm1.bias, VaeConfig::kNormEps, true);
    h = forward_conv(r.conv1, h);
    h = be.group_norm(h, groups, r.norm2.weight, r.norm2.bias, VaeConfig::kNormEps, true);
    h = forward_conv(r.conv2, h);
    return be.add(r.shortcut ? forward_conv(*r.shortcut, x) : x, h);
}

Tensor Flux2Vae::forward_attention(const Attention& a, const Tensor& x) const {
    // x [B, C, H, W] -> same: one head of width C over the H*W positions, plus the residual.
    Backend& be = *backend_;
    const int64_t B = x.dim(0), C = x.dim(1), L = x.dim(2) * x.dim(3);
    Tensor n = be.group_norm(x, static_cast<int>(config_.norm_num_groups), a.norm.weight, a.norm.bias,
                             VaeConfig::kNormEps, false);
    const Tensor tokens = be.transpose_last2(n.reshape({B, C, L}));  // [B, L, C]
    auto project = [&](const LinearWeight& w, const Tensor& bias) {
        return be.add_bias(be.linear(tokens, w), bias).reshape({B, L, 1, C});
    };
    Tensor o = be.attention(project(a.to_q, a.q_bias), project(a.to_k, a.k_bias), project(a.to_v, a.v_bias));
    o = be.add_bias(be.linear(o, a.to_out), a.out_bias);  // [B, L, C]
    return be.add(be.transpose_last2(o).reshape(x.shape()), x);
}

Tensor Flux2Vae::forward_mid(const Mid& m, const Tensor& x) const {
    Tensor h = forward_resnet(m.first, x);
    if (m.attention) h = forward_attention(*m.attention, h);
    return forward_resnet(m.second, h);
}

Tensor Flux2Vae::decoder_head(const Tensor& z_device) const {
    Tensor h = z_device;
    if (post_quant_conv_) h = forward_conv(*post_quant_conv_, h);
    h = forward_conv(dec_conv_in_, h);
    return forward_mid(dec_mid_, h);
}

Tensor Flux2Vae::decoder_tail(const Tensor& mid_device) const {
    Backend& be = *backend_;
    Tensor h = mid_device;
    for (const Stage& s : up_) {
        for (const Resnet& r : s.resnets) h = forward_resnet(r, h);
        if (s.resample) h = forward_conv(*s.resample, be.upsample_nearest2x(h));
    }
    h = be.group_norm(h, static_cast<int>(config_.norm_num_groups), dec_norm_out_.weight, dec_norm_out_.bias,
                      VaeConfig::kNormEps, true);
    return forward_conv(dec_conv_out_, h);
}

void Flux2Vae::check_latents(const Tensor& z) const {
    check(z.ndim() == 4 && z.dim(1) == config_.latent_channels, "VAE decode: expected latents [B, ",
          config_.latent_channels, ", h, w], got ", shape_str(z.shape()));
}

Tensor Flux2Vae::decode(const Tensor& z) const {
    check_latents(z);
    return backend_->download(decoder_tail(decoder_head(backend_->upload(z))));
}

Tensor Flux2Vae::decode_mid(const Tensor& z) const {
    check_latents(z);
    return backend_->download(decoder_head(backend_->upload(z)));
}

Tensor Flux2Vae::decode_up(const Tensor& mid) const {
    const int64_t channels = dec_conv_in_.weight.dim(0);  // the mid block keeps conv_in's width
    check(mid.ndim() == 4 && mid.dim(1) == channels, "VAE decode_up: expected the mid block's output [B, ", channels,
          ", h, w], got ", shape_str(mid.shape()));
    return backend_->download(decoder_tail(backend_->upload(mid)));
}

void Flux2Vae::check_image(const Tensor& image) const {
    const int64_t f = config_.scale_factor();
    check(image.ndim() == 4 && image.dim(1) == config_.in_channels && image.dim(2) % f == 0 && image.dim(3) % f == 0,
          "VAE encode: expected images [B, ", config_.in_channels, ", H, W] with H and W multiples of ", f, ", got ",
          shape_str(image.shape()));
}

Tensor Flux2Vae::encode_mean(const Tensor& image) const {
    check_image(image);
    Backend& be = *backend_;
    Tensor h = forward_conv(enc_conv_in_, be.upload(image));
    for (const Stage& s : down_) {
        for (const Resnet& r : s.resnets) h = forward_resnet(r, h);
        // Downsample2D pads right and bottom only, then a stride-2 valid convolution.
        if (s.resample) h = forward_conv(*s.resample, be.pad2d(h, 0, 1, 0, 1));
    }
    return be.download(encoder_rest(h));
}

Tensor Flux2Vae::encode_mean_from_features(const Tensor& features) const {
    const int64_t channels = enc_mid_.first.conv1.weight.dim(1);  // the mid block takes the last down block's width
    check(features.ndim() == 4 && features.dim(1) == channels, "VAE encode: expected the down path's features [B, ",
          channels, ", h, w], got ", shape_str(features.shape()));
    return backend_->download(encoder_rest(backend_->upload(features)));
}

Tensor Flux2Vae::encoder_rest(const Tensor& features_device) const {
    Backend& be = *backend_;
    Tensor h = forward_mid(enc_mid_, features_device);
    h = be.group_norm(h, static_cast<int>(config_.norm_num_groups), enc_norm_out_.weight, enc_norm_out_.bias,
                      VaeConfig::kNormEps, true);
    h = forward_conv(enc_conv_out_, h);
    if (quant_conv_) h = forward_conv(*quant_conv_, h);
    // DiagonalGaussianDistribution: moments = [mean | logvar] along channels; the mode is the mean.
    return be.slice(h, 1, 0, config_.latent_channels);
}

}  // namespace flux2
