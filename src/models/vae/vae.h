#pragma once
// AutoencoderKLFlux2 (FLUX2_SPEC.md §3) on any Backend: the decoder for text-to-image, the encoder for reference
// images. Feature maps are NCHW; weights are bound by internal (diffusers) name from a diffusers `vae/` folder or a
// BFL `ae.safetensors`. Inputs and outputs are host F32 tensors.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/vae/latent_batch_norm.h"
#include "models/vae/vae_config.h"
#include "quant/linear_weight.h"
#include "tensor/tensor.h"

namespace flux2 {

class WeightSource;

// The part of a crop of the latent grid (rows [y0, y1), columns [x0, x1), latent pixels relative to the crop) whose
// positions count toward the image's GroupNorm statistics in Flux2Vae::decode_up_together; the crops' owned parts
// cover the image exactly once.
struct OwnedRegion {
    int64_t y0 = 0, y1 = 0, x0 = 0, x1 = 0;
};

class Flux2Vae {
public:
    // Binds every weight `config` describes (shapes checked) and fails on any tensor left unclaimed.
    static Flux2Vae load(WeightSource& weights, const VaeConfig& config, Backend& backend);
    // A diffusers vae/ folder or file (config.json used when present), or BFL ae.safetensors (config inferred).
    static Flux2Vae load(const std::string& path, Backend& backend);

    const VaeConfig& config() const { return config_; }
    // bn.running_mean / bn.running_var (host) with the config's eps, for latent (de)normalization.
    const LatentBatchNorm& latent_batch_norm() const { return batch_norm_; }

    // z [B, latent_channels, h, w] -> image [B, out_channels, h*f, w*f] in about [-1, 1] (f = scale_factor()).
    Tensor decode(const Tensor& z) const;
    // The decoder in two parts, for tiled decoding (decode(z) computes decode_up(decode_mid(z))): the head at the
    // latent resolution (post_quant_conv, conv_in and the mid block, whose attention spans every latent position)
    // -> host [B, mid_channels, h, w]; and the upsampling tail from there to the image.
    Tensor decode_mid(const Tensor& z) const;
    Tensor decode_up(const Tensor& mid) const;
    // decode_up of overlapping crops of one decode_mid output, run together so that every GroupNorm normalizes with
    // the statistics of the whole image (each crop contributing its owned positions) instead of its crop's: tiles
    // then differ from the untiled decode only by the zero padding at their inner edges. The crops stay in host
    // memory between GroupNorms, which run on the host (vae_lockstep.cpp); one crop at a time is on the backend.
    std::vector<Tensor> decode_up_together(const std::vector<Tensor>& crops,
                                           const std::vector<OwnedRegion>& owned) const;
    // The encoder likewise in two parts: the down path (conv_in and the down blocks) over overlapping image crops
    // (owned regions in latent pixels, as above) in lockstep -> each crop's features at the latent resolution; and
    // the rest (mid block with its attention, norm_out, conv_out, quant_conv) on features of the whole image -> the
    // latent mean, as encode_mean.
    std::vector<Tensor> encode_down_together(const std::vector<Tensor>& crops,
                                             const std::vector<OwnedRegion>& owned) const;
    Tensor encode_mean_from_features(const Tensor& features) const;
    // How far, in latent pixels, decode_up_together and encode_down_together read around a position: the reach of
    // their convolutions, summed over the resolutions they run at (GroupNorm statistics are the whole image's, so
    // they add none). A crop's output farther than this from its inner edges is the untiled pass's, exactly.
    double decode_tail_reach() const;
    double encode_down_reach() const;
    // image [B, in_channels, H, W] in [-1, 1], H and W multiples of scale_factor() -> the mean (mode) of the latent
    // distribution [B, latent_channels, H/f, W/f], which is what the pipelines use.
    Tensor encode_mean(const Tensor& image) const;

private:
    struct Conv {
        Tensor weight, bias;  // [Cout, Cin, k, k], [Cout] on the backend
        int stride = 1, padding = 0;
    };
    struct Norm {
        Tensor weight, bias;  // [C]
    };
    struct Resnet {
        Norm norm1, norm2;
        Conv conv1, conv2;
        std::optional<Conv> shortcut;  // 1x1 when the block changes the channel count
    };
    struct Attention {
        Norm norm;
        LinearWeight to_q, to_k, to_v, to_out;
        Tensor q_bias, k_bias, v_bias, out_bias;
    };
    struct Mid {
        Resnet first, second;
        std::optional<Attention> attention;
    };
    struct Stage {
        std::vector<Resnet> resnets;
        std::optional<Conv> resample;  // encoder: stride-2 downsample; decoder: conv after nearest 2x upsampling
    };

    Tensor forward_conv(const Conv& c, const Tensor& x) const;
    Tensor forward_resnet(const Resnet& r, const Tensor& x) const;
    Tensor forward_attention(const Attention& a, const Tensor& x) const;
    Tensor forward_mid(const Mid& m, const Tensor& x) const;
    void check_latents(const Tensor& z) const;    // [B, latent_channels, h, w]
    void check_image(const Tensor& image) const;  // [B, in_channels, H, W], H and W multiples of the scale factor
    Tensor encoder_rest(const Tensor& features_device) const;
    // Lockstep helpers (vae_lockstep.cpp): crops checked against their owned regions (at `scale` pixels per latent
    // pixel), op run on each crop on the backend, a resnet over all crops with whole-image GroupNorm statistics.
    void check_crops(const std::vector<Tensor>& crops, const std::vector<OwnedRegion>& owned, int64_t channels,
                     int64_t scale) const;
    std::vector<Tensor> each_crop(const std::vector<Tensor>& xs, const std::function<Tensor(const Tensor&)>& op) const;
    std::vector<Tensor> resnet_together(const Resnet& r, const std::vector<Tensor>& h,
                                        const std::vector<OwnedRegion>& owned, int64_t scale) const;
    std::vector<Tensor> group_norm_together(const std::vector<Tensor>& xs, const Norm& n,
                                            const std::vector<OwnedRegion>& owned, int64_t scale) const;
    // Rows beyond a position that a convolution reads, at its input's resolution (decode_tail_reach,
    // encode_down_reach).
    static double conv_reach(const Conv& c);
    // The two halves of the decoder on device tensors.
    Tensor decoder_head(const Tensor& z_device) const;
    Tensor decoder_tail(const Tensor& mid_device) const;

    // Loading helpers (vae_load.cpp).
    Conv load_conv(WeightSource& w, const std::string& name, int64_t cout, int64_t cin, int64_t k, int stride,
                   int padding);
    Norm load_norm(WeightSource& w, const std::string& name, int64_t channels);
    Resnet load_resnet(WeightSource& w, const std::string& name, int64_t cin, int64_t cout);
    Attention load_attention(WeightSource& w, const std::string& name, int64_t channels);
    Mid load_mid(WeightSource& w, const std::string& name, int64_t channels);

    VaeConfig config_;
    Backend* backend_ = nullptr;
    LatentBatchNorm batch_norm_;
    // Encoder
    Conv enc_conv_in_;
    std::vector<Stage> down_;
    Mid enc_mid_;
    Norm enc_norm_out_;
    Conv enc_conv_out_;
    std::optional<Conv> quant_conv_;
    // Decoder
    std::optional<Conv> post_quant_conv_;
    Conv dec_conv_in_;
    Mid dec_mid_;
    std::vector<Stage> up_;
    Norm dec_norm_out_;
    Conv dec_conv_out_;
};

}  // namespace flux2
