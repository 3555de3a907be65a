// Flux2Vae::decode_up_together / encode_down_together: the decoder's upsampling tail and the encoder's down path
// over overlapping crops in lockstep. A GroupNorm's statistics are those of the whole image, gathered from the
// positions each crop owns (the crops overlap, and each position must count once); the convolutions, resampling
// and residual adds run per crop as untiled. The crops wait in host memory at each GroupNorm, which is computed
// there, so the backend holds one crop at a time.
#include <cmath>
#include <functional>

#include "core/error.h"
#include "core/parallel.h"
#include "models/vae/vae.h"

namespace flux2 {

namespace {

// Host GroupNorm (biased variance, two passes as the backends compute it) over crops [B, C, H, W] of one image:
// statistics from the owned regions (latent pixels, times `scale` at this resolution), applied to every position.
std::vector<Tensor> host_group_norm_together(const std::vector<Tensor>& xs, const std::vector<OwnedRegion>& owned,
                                             int64_t scale, int64_t groups, const std::vector<float>& weight,
                                             const std::vector<float>& bias, bool silu) {
    const int64_t B = xs[0].dim(0), C = xs[0].dim(1), cg = C / groups;
    check(C % groups == 0 && static_cast<int64_t>(weight.size()) == C, "VAE lockstep: ", C, " channels for GroupNorm(",
          groups, ") with ", weight.size(), " weights");
    std::vector<double> mean(B * groups), rstd(B * groups);
    // Sums one quantity over the owned positions of every crop for group g of sample b.
    auto owned_sum = [&](int64_t b, int64_t g, auto&& term) {
        double acc = 0;
        int64_t count = 0;
        for (size_t i = 0; i < xs.size(); ++i) {
            const int64_t H = xs[i].dim(2), W = xs[i].dim(3);
            const OwnedRegion& o = owned[i];
            for (int64_t c = g * cg; c < (g + 1) * cg; ++c) {
                const float* plane = xs[i].f32() + (b * C + c) * H * W;
                for (int64_t y = o.y0 * scale; y < o.y1 * scale; ++y)
                    for (int64_t x = o.x0 * scale; x < o.x1 * scale; ++x) acc += term(plane[y * W + x]);
                count += (o.y1 - o.y0) * (o.x1 - o.x0) * scale * scale;
            }
        }
        return acc / static_cast<double>(count);
    };
    parallel_for(B * groups, 1, [&](int64_t k0, int64_t k1) {
        for (int64_t k = k0; k < k1; ++k) {
            const int64_t b = k / groups, g = k % groups;
            const double m = owned_sum(b, g, [](float v) { return static_cast<double>(v); });
            const double var = owned_sum(b, g, [m](float v) { return (v - m) * (v - m); });
            mean[k] = m;
            rstd[k] = 1.0 / std::sqrt(var + VaeConfig::kNormEps);
        }
    });
    std::vector<Tensor> out;
    for (const Tensor& x : xs) {
        Tensor y = Tensor::zeros(x.shape());
        const int64_t S = x.dim(2) * x.dim(3);
        parallel_for(B * C, 1, [&](int64_t p0, int64_t p1) {
            for (int64_t p = p0; p < p1; ++p) {
                const int64_t b = p / C, c = p % C, k = b * groups + c / cg;
                const float* src = x.f32() + p * S;
                float* dst = y.f32() + p * S;
                for (int64_t i = 0; i < S; ++i) {
                    const float v = static_cast<float>((src[i] - mean[k]) * rstd[k]) * weight[c] + bias[c];
                    dst[i] = silu ? v / (1.0f + std::exp(-v)) : v;
                }
            }
        });
        out.push_back(std::move(y));
    }
    return out;
}

}  // namespace

void Flux2Vae::check_crops(const std::vector<Tensor>& crops, const std::vector<OwnedRegion>& owned, int64_t channels,
                           int64_t scale) const {
    check(!crops.empty() && crops.size() == owned.size(), "VAE lockstep: ", crops.size(), " crops and ", owned.size(),
          " owned regions");
    for (size_t i = 0; i < crops.size(); ++i) {
        const Tensor& c = crops[i];
        const OwnedRegion& o = owned[i];
        check(c.ndim() == 4 && c.dim(1) == channels && c.dim(0) == crops[0].dim(0) && c.dim(2) % scale == 0 &&
                  c.dim(3) % scale == 0,
              "VAE lockstep: crop ", i, " is ", shape_str(c.shape()), ", expected [", crops[0].dim(0), ", ", channels,
              ", h, w] with h and w multiples of ", scale);
        check(0 <= o.y0 && o.y0 < o.y1 && o.y1 * scale <= c.dim(2) && 0 <= o.x0 && o.x0 < o.x1 &&
                  o.x1 * scale <= c.dim(3),
              "VAE lockstep: crop ", i, " owns latent rows [", o.y0, ", ", o.y1, ") and columns [", o.x0, ", ", o.x1,
              ") outside its ", c.dim(2) / scale, "x", c.dim(3) / scale);
    }
}

std::vector<Tensor> Flux2Vae::each_crop(const std::vector<Tensor>& xs,
                                        const std::function<Tensor(const Tensor&)>& op) const {
    std::vector<Tensor> out;
    for (const Tensor& x : xs) out.push_back(backend_->download(op(backend_->upload(x))));
    return out;
}

std::vector<Tensor> Flux2Vae::group_norm_together(const std::vector<Tensor>& xs, const Norm& n,
                                                  const std::vector<OwnedRegion>& owned, int64_t scale) const {
    return host_group_norm_together(xs, owned, scale, config_.norm_num_groups, backend_->download(n.weight).to_vector(),
                                    backend_->download(n.bias).to_vector(), true);
}

std::vector<Tensor> Flux2Vae::resnet_together(const Resnet& r, const std::vector<Tensor>& h,
                                              const std::vector<OwnedRegion>& owned, int64_t scale) const {
    // As forward_resnet: shortcut(h) + conv2(silu(gn2(conv1(silu(gn1(h)))))).
    std::vector<Tensor> t = each_crop(group_norm_together(h, r.norm1, owned, scale),
                                      [&](const Tensor& x) { return forward_conv(r.conv1, x); });
    t = each_crop(group_norm_together(t, r.norm2, owned, scale),
                  [&](const Tensor& x) { return forward_conv(r.conv2, x); });
    const std::vector<Tensor> shortcut =
        r.shortcut ? each_crop(h, [&](const Tensor& x) { return forward_conv(*r.shortcut, x); }) : h;
    for (size_t i = 0; i < t.size(); ++i) {
        float* dst = t[i].f32();
        const float* res = shortcut[i].f32();
        for (int64_t k = 0; k < t[i].numel(); ++k) dst[k] += res[k];
    }
    return t;
}

double Flux2Vae::conv_reach(const Conv& c) {
    // Half the kernel at stride 1 (zero padding on both sides), the whole kernel less one at stride 2
    // (Downsample2D pads one side only).
    const double k = static_cast<double>(c.weight.dim(2));
    return c.stride == 1 ? (k - 1) / 2 : k - 1;
}

double Flux2Vae::decode_tail_reach() const {
    double reach = 0, scale = 1;  // latent pixels; pixels per latent pixel at the current resolution
    for (const Stage& s : up_) {
        for (const Resnet& r : s.resnets) reach += (conv_reach(r.conv1) + conv_reach(r.conv2)) / scale;
        if (s.resample) {
            scale *= 2;  // nearest upsampling reads the position it copies; then the convolution at the new scale
            reach += conv_reach(*s.resample) / scale;
        }
    }
    return reach + conv_reach(dec_conv_out_) / scale;
}

double Flux2Vae::encode_down_reach() const {
    double scale = static_cast<double>(config_.scale_factor());
    double reach = conv_reach(enc_conv_in_) / scale;
    for (const Stage& s : down_) {
        for (const Resnet& r : s.resnets) reach += (conv_reach(r.conv1) + conv_reach(r.conv2)) / scale;
        if (s.resample) {
            reach += conv_reach(*s.resample) / scale;
            scale /= 2;
        }
    }
    return reach;
}

std::vector<Tensor> Flux2Vae::decode_up_together(const std::vector<Tensor>& crops,
                                                 const std::vector<OwnedRegion>& owned) const {
    check_crops(crops, owned, dec_conv_in_.weight.dim(0), 1);
    std::vector<Tensor> h = crops;
    int64_t scale = 1;  // pixels per latent pixel at the current resolution
    for (const Stage& s : up_) {
        for (const Resnet& r : s.resnets) h = resnet_together(r, h, owned, scale);
        if (s.resample) {
            h = each_crop(h,
                          [&](const Tensor& x) { return forward_conv(*s.resample, backend_->upsample_nearest2x(x)); });
            scale *= 2;
        }
    }
    return each_crop(group_norm_together(h, dec_norm_out_, owned, scale),
                     [&](const Tensor& x) { return forward_conv(dec_conv_out_, x); });
}

std::vector<Tensor> Flux2Vae::encode_down_together(const std::vector<Tensor>& crops,
                                                   const std::vector<OwnedRegion>& owned) const {
    int64_t scale = config_.scale_factor();
    check_crops(crops, owned, config_.in_channels, scale);
    std::vector<Tensor> h = each_crop(crops, [&](const Tensor& x) { return forward_conv(enc_conv_in_, x); });
    for (const Stage& s : down_) {
        for (const Resnet& r : s.resnets) h = resnet_together(r, h, owned, scale);
        if (s.resample) {
            // Downsample2D pads right and bottom only, then a stride-2 valid convolution.
            h = each_crop(h,
                          [&](const Tensor& x) { return forward_conv(*s.resample, backend_->pad2d(x, 0, 1, 0, 1)); });
            scale /= 2;
        }
    }
    return h;
}

}  // namespace flux2
