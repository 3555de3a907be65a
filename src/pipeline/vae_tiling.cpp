#include "pipeline/vae_tiling.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"

namespace flux2 {

bool VaeTiling::applies(int64_t height, int64_t width) const { return force || height * width > auto_above_pixels; }

void VaeTiling::validate() const {
    check(tile > 0 && overlap >= 0 && overlap < tile,
          "VAE tiling: expected tile > overlap >= 0 (latent pixels), got "
          "tile ",
          tile, ", overlap ", overlap);
}

std::vector<int64_t> tile_starts(int64_t n, int64_t tile, int64_t overlap) {
    check(n > 0 && tile > overlap && overlap >= 0, "tile_starts: expected n > 0 and tile > overlap >= 0, got n ", n,
          ", tile ", tile, ", overlap ", overlap);
    if (n <= tile) return {0};
    const int64_t stride = tile - overlap, span = n - tile;
    const int64_t gaps = (span + stride - 1) / stride;  // the fewest whose stride stays <= tile - overlap
    std::vector<int64_t> starts;
    for (int64_t i = 0; i <= gaps; ++i) starts.push_back((i * span + gaps / 2) / gaps);
    return starts;
}

namespace {
// [B, C, H, W] -> the region rows [y, y + h), columns [x, x + w).
Tensor crop(const Tensor& t, int64_t y, int64_t x, int64_t h, int64_t w) {
    const int64_t BC = t.dim(0) * t.dim(1), H = t.dim(2), W = t.dim(3);
    Tensor out = Tensor::zeros({t.dim(0), t.dim(1), h, w});
    for (int64_t p = 0; p < BC; ++p)
        for (int64_t r = 0; r < h; ++r)
            std::memcpy(out.f32() + (p * h + r) * w, t.f32() + (p * H + y + r) * W + x, w * sizeof(float));
    return out;
}

// The part of each tile along one axis that counts toward whole-image statistics, relative to the tile's start:
// neighbours split their overlap at its middle, so the parts cover [0, n) once.
std::vector<std::pair<int64_t, int64_t>> owned_spans(const std::vector<int64_t>& starts, int64_t len, int64_t n) {
    std::vector<std::pair<int64_t, int64_t>> spans;
    for (size_t i = 0; i < starts.size(); ++i) {
        const int64_t lo = i == 0 ? 0 : (starts[i] + starts[i - 1] + len) / 2;
        const int64_t hi = i + 1 == starts.size() ? n : (starts[i + 1] + starts[i] + len) / 2;
        spans.emplace_back(lo - starts[i], hi - starts[i]);
    }
    return spans;
}

// Blend weights along one axis for tile i, in output pixels: 1 inside, falling linearly toward an edge shared with a
// neighbour over the width of that overlap, so two tiles' weights sum to 1 across it. Image borders stay at 1.
std::vector<float> axis_weights(const std::vector<int64_t>& starts, size_t i, int64_t len, int64_t scale) {
    const int64_t n_out = len * scale;
    std::vector<float> w(n_out, 1.0f);
    if (i > 0) {
        const int64_t ramp = (starts[i - 1] + len - starts[i]) * scale;
        for (int64_t p = 0; p < std::min(ramp, n_out); ++p) w[p] = std::min(w[p], (p + 0.5f) / ramp);
    }
    if (i + 1 < starts.size()) {
        const int64_t ramp = (starts[i] + len - starts[i + 1]) * scale;
        for (int64_t p = 0; p < std::min(ramp, n_out); ++p)
            w[n_out - 1 - p] = std::min(w[n_out - 1 - p], (p + 0.5f) / ramp);
    }
    return w;
}

std::string layout(const std::vector<int64_t>& ys, const std::vector<int64_t>& xs, const VaeTiling& t, int64_t f) {
    return str(ys.size(), "x", xs.size(), " tiles of ", t.tile * f, " px, overlap >= ", t.overlap * f, " px");
}

std::string reason(const VaeTiling& t, int64_t height, int64_t width) {
    return t.force ? std::string("--vae-tiling")
                   : str("automatic: ", width, "x", height, " is above ", t.auto_above_pixels, " pixels");
}
// Up to the lockstep size, whole instead of tiled, on every backend. Tiles there must run in lockstep, every crop
// held in host memory at each GroupNorm (vae_lockstep.cpp), which costs more than it saves: on an H200 37 s at
// 1024² against 0.05 s whole, to save a quarter of a ~3 GB peak; on the CPU 299 s against 75 s and a 7.5 GB peak
// against 3.7 GB (PERFORMANCE.md "VAE decode whole and tiled"). Said in the log.
bool whole_at_lockstep_size(const Flux2Vae& vae, const VaeTiling& tiling, int64_t h, int64_t w, const char* what) {
    if (!tiling.lockstep(h, w)) return false;
    const int64_t f = vae.config().scale_factor();
    log_info("VAE ", what, " whole, not tiled: at ", w * f, "x", h * f, " (up to ", tiling.whole_head_max_positions,
             " latent positions) tiles must share the whole image's GroupNorm statistics, holding every crop at once, "
             "which takes more time than the whole pass and, on the CPU, more memory (docs/PIPELINE.md, \"VAE "
             "tiling\")");
    return true;
}
}  // namespace

Tensor run_tiled(const Tensor& x, int64_t grid_h, int64_t grid_w, int64_t in_scale, int64_t out_scale,
                 const VaeTiling& tiling, const std::function<Tensor(const Tensor&)>& fn) {
    tiling.validate();
    check(x.ndim() == 4 && x.dim(2) == grid_h * in_scale && x.dim(3) == grid_w * in_scale,
          "VAE tiling: expected [B, C, ", grid_h * in_scale, ", ", grid_w * in_scale, "], got ", shape_str(x.shape()));
    const std::vector<int64_t> ys = tile_starts(grid_h, tiling.tile, tiling.overlap);
    const std::vector<int64_t> xs = tile_starts(grid_w, tiling.tile, tiling.overlap);
    const int64_t th = std::min(grid_h, tiling.tile), tw = std::min(grid_w, tiling.tile);
    const int64_t H = grid_h * out_scale, W = grid_w * out_scale, oh = th * out_scale, ow = tw * out_scale;

    Tensor out, weight_sum = Tensor::zeros({H, W});
    bool first = true;  // out takes its channel count from the first tile
    for (size_t i = 0; i < ys.size(); ++i) {
        const std::vector<float> wy = axis_weights(ys, i, th, out_scale);
        for (size_t j = 0; j < xs.size(); ++j) {
            const std::vector<float> wx = axis_weights(xs, j, tw, out_scale);
            const Tensor t = fn(crop(x, ys[i] * in_scale, xs[j] * in_scale, th * in_scale, tw * in_scale));
            check(t.ndim() == 4 && t.dim(0) == x.dim(0) && t.dim(2) == oh && t.dim(3) == ow,
                  "VAE tiling: a tile's output must be [", x.dim(0), ", C, ", oh, ", ", ow, "], got ",
                  shape_str(t.shape()));
            if (first) out = Tensor::zeros({t.dim(0), t.dim(1), H, W});
            check(t.dim(1) == out.dim(1), "VAE tiling: tiles with ", out.dim(1), " and ", t.dim(1), " channels");
            first = false;
            const int64_t y0 = ys[i] * out_scale, x0 = xs[j] * out_scale;
            for (int64_t p = 0; p < t.dim(0) * t.dim(1); ++p)
                for (int64_t r = 0; r < oh; ++r) {
                    const float* src = t.f32() + (p * oh + r) * ow;
                    float* dst = out.f32() + (p * H + y0 + r) * W + x0;
                    for (int64_t c = 0; c < ow; ++c) dst[c] += wy[r] * wx[c] * src[c];
                }
            for (int64_t r = 0; r < oh; ++r)
                for (int64_t c = 0; c < ow; ++c) weight_sum.f32()[(y0 + r) * W + x0 + c] += wy[r] * wx[c];
        }
    }
    const int64_t planes = out.dim(0) * out.dim(1);
    for (int64_t p = 0; p < planes; ++p)
        for (int64_t k = 0; k < H * W; ++k) out.f32()[p * H * W + k] /= weight_sum.f32()[k];
    return out;
}

namespace {
// Crops of x [B, C, grid_h * in_scale, grid_w * in_scale] at the tile layout, with the part of each that counts
// toward whole-image statistics (Flux2Vae's lockstep passes), in row-by-row order.
struct LockstepTiles {
    std::vector<int64_t> ys, xs;  // tile starts, latent pixels
    std::vector<Tensor> crops;
    std::vector<OwnedRegion> owned;
};
LockstepTiles lockstep_tiles(const Tensor& x, int64_t grid_h, int64_t grid_w, int64_t in_scale,
                             const VaeTiling& tiling) {
    tiling.validate();
    LockstepTiles t;
    t.ys = tile_starts(grid_h, tiling.tile, tiling.overlap);
    t.xs = tile_starts(grid_w, tiling.tile, tiling.overlap);
    const int64_t th = std::min(grid_h, tiling.tile), tw = std::min(grid_w, tiling.tile);
    const std::vector<std::pair<int64_t, int64_t>> rows = owned_spans(t.ys, th, grid_h),
                                                   cols = owned_spans(t.xs, tw, grid_w);
    for (size_t i = 0; i < t.ys.size(); ++i)
        for (size_t j = 0; j < t.xs.size(); ++j) {
            t.crops.push_back(crop(x, t.ys[i] * in_scale, t.xs[j] * in_scale, th * in_scale, tw * in_scale));
            t.owned.push_back({rows[i].first, rows[i].second, cols[j].first, cols[j].second});
        }
    return t;
}

// The lockstep passes' outputs put together: each tile gives its owned region (out_scale pixels per latent pixel),
// which lockstep_layout keeps at least the passes' reach from the tile's inner edges, so every pixel comes from a
// tile that computed it as the untiled pass does; no blend is needed, and none would help.
Tensor stitch(const LockstepTiles& t, const std::vector<Tensor>& outs, int64_t grid_h, int64_t grid_w,
              int64_t out_scale) {
    check(outs.size() == t.owned.size(), "VAE tiling: ", outs.size(), " outputs for ", t.owned.size(), " tiles");
    const int64_t B = outs[0].dim(0), C = outs[0].dim(1), H = grid_h * out_scale, W = grid_w * out_scale;
    Tensor out = Tensor::zeros({B, C, H, W});
    for (size_t k = 0; k < outs.size(); ++k) {
        const Tensor& o = outs[k];
        const OwnedRegion& r = t.owned[k];
        const int64_t oh = o.dim(2), ow = o.dim(3), y0 = t.ys[k / t.xs.size()] * out_scale,
                      x0 = t.xs[k % t.xs.size()] * out_scale;
        check(o.dim(0) == B && o.dim(1) == C && r.y1 * out_scale <= oh && r.x1 * out_scale <= ow, "VAE tiling: tile ",
              k, "'s output is ", shape_str(o.shape()));
        const int64_t width = (r.x1 - r.x0) * out_scale;
        for (int64_t p = 0; p < B * C; ++p)
            for (int64_t y = r.y0 * out_scale; y < r.y1 * out_scale; ++y)
                std::memcpy(out.f32() + (p * H + y0 + y) * W + x0 + r.x0 * out_scale,
                            o.f32() + (p * oh + y) * ow + r.x0 * out_scale, width * sizeof(float));
    }
    return out;
}
}  // namespace

VaeTiling lockstep_layout(const VaeTiling& tiling, double reach) {
    VaeTiling t = tiling;
    // Neighbours split their overlap at its middle: half of it must cover the reach, and a pixel more for rounding.
    t.overlap = std::max(tiling.overlap, 2 * (static_cast<int64_t>(std::ceil(reach)) + 1));
    t.tile = std::max(tiling.tile, 2 * t.overlap);
    return t;
}

Tensor decode_tiled(const Flux2Vae& vae, const Tensor& z, const VaeTiling& tiling) {
    check(z.ndim() == 4, "VAE decode: expected latents [B, C, h, w], got ", shape_str(z.shape()));
    const int64_t f = vae.config().scale_factor();
    if (tiling.lockstep(z.dim(2), z.dim(3))) {
        // The head whole: the mid block's attention and GroupNorms see the whole latent, as untiled. The tail's
        // tiles then run together, each GroupNorm with the whole image's statistics (decode_up_together).
        const Tensor mid = vae.decode_mid(z);
        const LockstepTiles t =
            lockstep_tiles(mid, z.dim(2), z.dim(3), 1, lockstep_layout(tiling, vae.decode_tail_reach()));
        return stitch(t, vae.decode_up_together(t.crops, t.owned), z.dim(2), z.dim(3), f);
    }
    return run_tiled(z, z.dim(2), z.dim(3), 1, f, tiling, [&](const Tensor& tile) { return vae.decode(tile); });
}

Tensor encode_mean_tiled(const Flux2Vae& vae, const Tensor& image, const VaeTiling& tiling) {
    const int64_t f = vae.config().scale_factor();
    check(image.ndim() == 4 && image.dim(2) % f == 0 && image.dim(3) % f == 0,
          "VAE encode: expected images [B, C, H, W] with H and W multiples of ", f, ", got ", shape_str(image.shape()));
    const int64_t h = image.dim(2) / f, w = image.dim(3) / f;
    if (tiling.lockstep(h, w)) {
        // The down path's tiles together, each GroupNorm with the whole image's statistics; their features stitched
        // on the latent grid; the mid block (attention over every position) and the rest on the whole of them.
        const LockstepTiles t = lockstep_tiles(image, h, w, f, lockstep_layout(tiling, vae.encode_down_reach()));
        return vae.encode_mean_from_features(stitch(t, vae.encode_down_together(t.crops, t.owned), h, w, 1));
    }
    return run_tiled(image, h, w, f, 1, tiling, [&](const Tensor& tile) { return vae.encode_mean(tile); });
}

Tensor vae_decode(const Flux2Vae& vae, const Tensor& z, const VaeTiling& tiling) {
    const int64_t f = vae.config().scale_factor();
    if (z.ndim() != 4 || !tiling.applies(z.dim(2) * f, z.dim(3) * f)) return vae.decode(z);
    if (whole_at_lockstep_size(vae, tiling, z.dim(2), z.dim(3), "decode")) return vae.decode(z);
    log_info("VAE decode in ",
             layout(tile_starts(z.dim(2), tiling.tile, tiling.overlap),
                    tile_starts(z.dim(3), tiling.tile, tiling.overlap), tiling, f),
             ", each tile through the whole decoder (", reason(tiling, z.dim(2) * f, z.dim(3) * f), ")");
    return decode_tiled(vae, z, tiling);
}

Tensor vae_encode_mean(const Flux2Vae& vae, const Tensor& image, const VaeTiling& tiling) {
    const int64_t f = vae.config().scale_factor();
    if (image.ndim() != 4 || image.dim(2) % f != 0 || image.dim(3) % f != 0 ||
        !tiling.applies(image.dim(2), image.dim(3)))
        return vae.encode_mean(image);  // encode_mean reports a malformed image
    if (whole_at_lockstep_size(vae, tiling, image.dim(2) / f, image.dim(3) / f, "encode"))
        return vae.encode_mean(image);
    log_info("VAE encode in ",
             layout(tile_starts(image.dim(2) / f, tiling.tile, tiling.overlap),
                    tile_starts(image.dim(3) / f, tiling.tile, tiling.overlap), tiling, f),
             ", each tile through the whole encoder (", reason(tiling, image.dim(2), image.dim(3)), ")");
    return encode_mean_tiled(vae, image, tiling);
}

}  // namespace flux2
