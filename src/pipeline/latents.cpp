#include "pipeline/latents.h"

#include <cmath>

#include "core/error.h"

namespace flux2 {

namespace {

void check_rank(const Tensor& t, int rank, const char* what) {
    check(t.ndim() == rank && t.dtype() == DType::F32 && t.device() == Device::cpu, what,
          ": expected a host F32 tensor of rank ", rank, ", got ", dtype_name(t.dtype()), " ", shape_str(t.shape()));
}

// The per-channel std of the reference: sqrt(var + eps), each op rounded to float32 as torch does.
std::vector<float> bn_std(const LatentBatchNorm& bn, int64_t channels) {
    check(bn.running_mean.numel() == channels && bn.running_var.numel() == channels,
          "latent BatchNorm statistics have ", bn.running_mean.numel(), " / ", bn.running_var.numel(),
          " channels, latents have ", channels);
    std::vector<float> std_dev(channels);
    const float* var = bn.running_var.f32();
    for (int64_t c = 0; c < channels; ++c) {
        check(var[c] + bn.eps > 0.0f, "latent BatchNorm running_var[", c, "] = ", var[c], " is not positive");
        std_dev[c] = std::sqrt(var[c] + bn.eps);
    }
    return std_dev;
}

}  // namespace

Tensor pack_latents(const Tensor& x) {
    check_rank(x, 4, "pack_latents");
    const int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    Tensor out = Tensor::zeros({B, HW, C});
    const float* src = x.f32();
    float* dst = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t p = 0; p < HW; ++p) dst[(b * HW + p) * C + c] = src[(b * C + c) * HW + p];
    return out;
}

Tensor unpack_latents(const Tensor& tokens, int64_t h, int64_t w) {
    check_rank(tokens, 3, "unpack_latents");
    check(h > 0 && w > 0 && tokens.dim(1) == h * w, "unpack_latents: ", tokens.dim(1), " tokens do not form a ", h, "x",
          w, " grid");
    const int64_t B = tokens.dim(0), HW = h * w, C = tokens.dim(2);
    Tensor out = Tensor::zeros({B, C, h, w});
    const float* src = tokens.f32();
    float* dst = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t p = 0; p < HW; ++p)
            for (int64_t c = 0; c < C; ++c) dst[(b * C + c) * HW + p] = src[(b * HW + p) * C + c];
    return out;
}

Tensor unpack_latents_with_ids(const Tensor& tokens, const Tensor& ids) {
    check_rank(tokens, 3, "unpack_latents_with_ids");
    check_rank(ids, 2, "unpack_latents_with_ids (ids)");
    const int64_t B = tokens.dim(0), L = tokens.dim(1), C = tokens.dim(2);
    check(ids.dim(0) == L && ids.dim(1) == 4, "unpack_latents_with_ids: ids ", shape_str(ids.shape()), " do not match ",
          L, " tokens");
    const float* id = ids.f32();
    std::vector<int64_t> row(L), col(L);
    int64_t h = 0, w = 0;
    for (int64_t i = 0; i < L; ++i) {
        const float r = id[i * 4 + 1], c = id[i * 4 + 2];
        check(r >= 0 && c >= 0 && r == std::floor(r) && c == std::floor(c), "unpack_latents_with_ids: token ", i,
              " has position (", r, ", ", c, "), expected non-negative integers");
        row[i] = static_cast<int64_t>(r);
        col[i] = static_cast<int64_t>(c);
        h = std::max(h, row[i] + 1);
        w = std::max(w, col[i] + 1);
    }
    check(h * w == L, "unpack_latents_with_ids: ", L, " tokens cannot fill the ", h, "x", w, " grid their ids span");
    std::vector<int64_t> cell_of_token(L);
    std::vector<char> seen(L, 0);
    for (int64_t i = 0; i < L; ++i) {
        const int64_t cell = row[i] * w + col[i];
        check(!seen[cell], "unpack_latents_with_ids: two tokens share position (", row[i], ", ", col[i], ")");
        seen[cell] = 1;
        cell_of_token[i] = cell;
    }
    Tensor out = Tensor::zeros({B, C, h, w});
    const float* src = tokens.f32();
    float* dst = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < L; ++i)
            for (int64_t c = 0; c < C; ++c) dst[(b * C + c) * L + cell_of_token[i]] = src[(b * L + i) * C + c];
    return out;
}

Tensor patchify_latents(const Tensor& z) {
    check_rank(z, 4, "patchify_latents");
    const int64_t B = z.dim(0), C = z.dim(1), H = z.dim(2), W = z.dim(3);
    check(H % 2 == 0 && W % 2 == 0, "patchify_latents: spatial size ", H, "x", W, " is not even");
    const int64_t h = H / 2, w = W / 2;
    Tensor out = Tensor::zeros({B, C * 4, h, w});
    const float* src = z.f32();
    float* dst = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t py = 0; py < 2; ++py)
                for (int64_t px = 0; px < 2; ++px) {
                    float* plane = dst + ((b * C + c) * 4 + py * 2 + px) * h * w;
                    const float* in = src + (b * C + c) * H * W;
                    for (int64_t y = 0; y < h; ++y)
                        for (int64_t x = 0; x < w; ++x) plane[y * w + x] = in[(2 * y + py) * W + 2 * x + px];
                }
    return out;
}

Tensor unpatchify_latents(const Tensor& x) {
    check_rank(x, 4, "unpatchify_latents");
    const int64_t B = x.dim(0), C4 = x.dim(1), h = x.dim(2), w = x.dim(3);
    check(C4 % 4 == 0, "unpatchify_latents: ", C4, " channels is not a multiple of 4");
    const int64_t C = C4 / 4, H = 2 * h, W = 2 * w;
    Tensor out = Tensor::zeros({B, C, H, W});
    const float* src = x.f32();
    float* dst = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c)
            for (int64_t py = 0; py < 2; ++py)
                for (int64_t px = 0; px < 2; ++px) {
                    const float* plane = src + ((b * C + c) * 4 + py * 2 + px) * h * w;
                    float* o = dst + (b * C + c) * H * W;
                    for (int64_t y = 0; y < h; ++y)
                        for (int64_t xx = 0; xx < w; ++xx) o[(2 * y + py) * W + 2 * xx + px] = plane[y * w + xx];
                }
    return out;
}

namespace {
void fill_grid_ids(float* dst, int64_t h, int64_t w, float t) {
    for (int64_t r = 0; r < h; ++r)
        for (int64_t c = 0; c < w; ++c) {
            float* row = dst + (r * w + c) * 4;
            row[0] = t;
            row[1] = static_cast<float>(r);
            row[2] = static_cast<float>(c);
            row[3] = 0.0f;
        }
}
}  // namespace

Tensor image_position_ids(int64_t h, int64_t w) {
    check(h > 0 && w > 0, "image_position_ids: grid ", h, "x", w, " must be positive");
    Tensor ids = Tensor::zeros({h * w, 4});
    fill_grid_ids(ids.f32(), h, w, 0.0f);
    return ids;
}

Tensor text_position_ids(int64_t n) {
    check(n > 0, "text_position_ids: token count ", n, " must be positive");
    Tensor ids = Tensor::zeros({n, 4});
    float* dst = ids.f32();
    for (int64_t k = 0; k < n; ++k) dst[k * 4 + 3] = static_cast<float>(k);
    return ids;
}

Tensor reference_position_ids(const std::vector<std::pair<int64_t, int64_t>>& sizes) {
    check(!sizes.empty(), "reference_position_ids: no reference images");
    int64_t total = 0;
    for (const auto& [h, w] : sizes) {
        check(h > 0 && w > 0, "reference_position_ids: grid ", h, "x", w, " must be positive");
        total += h * w;
    }
    Tensor ids = Tensor::zeros({total, 4});
    float* dst = ids.f32();
    for (size_t n = 0; n < sizes.size(); ++n) {
        const auto [h, w] = sizes[n];
        // Reference n sits at time coordinate 10*(n+1) so that its RoPE phases differ from the target's (t = 0).
        fill_grid_ids(dst, h, w, static_cast<float>(10 * (n + 1)));
        dst += h * w * 4;
    }
    return ids;
}

namespace {
// Applies f(value, mean, std) to every element of the NCHW latents x, with its channel's BatchNorm statistics.
template <class F>
void per_channel(Tensor& x, const LatentBatchNorm& bn, const char* what, F f) {
    check_rank(x, 4, what);
    const int64_t B = x.dim(0), C = x.dim(1), HW = x.dim(2) * x.dim(3);
    const std::vector<float> std_dev = bn_std(bn, C);
    const float* mean = bn.running_mean.f32();
    float* p = x.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
            float* plane = p + (b * C + c) * HW;
            for (int64_t i = 0; i < HW; ++i) plane[i] = f(plane[i], mean[c], std_dev[c]);
        }
}
}  // namespace

void batch_norm_normalize(Tensor& x, const LatentBatchNorm& bn) {
    per_channel(x, bn, "batch_norm_normalize", [](float v, float mean, float sd) { return (v - mean) / sd; });
}

void batch_norm_denormalize(Tensor& x, const LatentBatchNorm& bn) {
    per_channel(x, bn, "batch_norm_denormalize", [](float v, float mean, float sd) { return v * sd + mean; });
}

}  // namespace flux2
