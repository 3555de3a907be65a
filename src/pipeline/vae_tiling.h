#pragma once
// Tiled VAE decode and encode: the latent grid is cut into overlapping square tiles, each tile runs through the
// unchanged VAE (any backend), and the overlaps are blended linearly on the host. Peak memory then follows the tile,
// not the image: untiled, the decoder's mid-block attention over every latent position and its full-resolution
// feature maps grow with the image area (2048² is 65,536 latent positions and 128-channel maps of 2 GB in fp32).
//
// Up to whole_head_max_positions tiling is exact up to float rounding: the decoder's head (with the mid-block
// attention) runs on the whole latent, the tiles run in lockstep with every GroupNorm taking the whole image's
// statistics, and each tile gives only the part farther than its convolutions' reach from its inner edges, where
// their zero padding cannot be seen (lockstep_layout). Above it each tile runs the whole pass, which is not exact,
// for three reasons, all local to a tile: GroupNorm statistics are taken over the tile instead of the image, the
// mid-block attention sees only the tile, and 3x3 convolutions zero-pad at the tile's inner edges. The blended
// overlap hides the last; the first two shrink as tiles grow. docs/PIPELINE.md gives the measured bounds.
#include <cstdint>
#include <functional>
#include <vector>

#include "models/vae/vae.h"
#include "tensor/tensor.h"

namespace flux2 {

struct VaeTiling {
    // --vae-tiling: tile whatever the size. Otherwise images above auto_above_pixels are tiled.
    bool force = false;
    // Tile side in latent pixels: 64 is 512 image pixels at FLUX.2's scale factor 8, the size the VAE was trained
    // at (diffusers' sample_size), so GroupNorm sees statistics like those of training, and a tile's attention is
    // 4,096 positions.
    int64_t tile = 64;
    // Least overlap of neighbouring tiles in latent pixels (128 image pixels): a quarter of the tile, as diffusers'
    // tile_overlap_factor, and more than the few latent pixels over which zero padding at a tile edge is visible.
    int64_t overlap = 16;
    // 1536² (2.4 MP): above it the untiled decoder's full-resolution activations alone pass a few GB.
    int64_t auto_above_pixels = int64_t{1536} * 1536;
    // Decode: up to this many latent positions (128², a 1024² image) the decoder's head (conv_in and the mid block
    // with its attention over every position) runs on the whole latent, exactly as untiled, and only the
    // upsampling tail is tiled; beyond it the head's attention (positions² scores) is what tiling must bound, so
    // each tile runs the whole decoder.
    int64_t whole_head_max_positions = int64_t{128} * 128;

    // Whether an image of height x width (pixels) is processed in tiles.
    bool applies(int64_t height, int64_t width) const;
    // Whether a tiled pass over a latent grid of h x w runs in lockstep with whole-image statistics (the mid block
    // whole): up to whole_head_max_positions.
    bool lockstep(int64_t h, int64_t w) const { return h * w <= whole_head_max_positions; }
    // Checks tile > overlap >= 0; throws naming both values otherwise.
    void validate() const;
};

// Starts of the tiles covering [0, n): one tile of length n when n <= tile; otherwise the fewest tiles of length
// `tile` with neighbours overlapping by at least `overlap`, spread evenly with the first at 0 and the last ending at
// n, so a border tile is as large as any other (a small border tile would have poor GroupNorm statistics).
std::vector<int64_t> tile_starts(int64_t n, int64_t tile, int64_t overlap);

// Runs `fn` on overlapping regions of x [B, C, H, W] and blends its outputs. The tiles are laid on a grid of
// grid_h x grid_w cells (the latent grid); a cell is in_scale pixels of x and out_scale pixels of fn's output
// (decode: 1 and f; encode: f and 1). fn maps [B, C, th*in_scale, tw*in_scale] to [B, C', th*out_scale,
// tw*out_scale]. Inside an overlap each tile's weight falls linearly toward its edge, and weights are normalized,
// so the blend is continuous and a function that commutes with cropping comes out exactly. Tiles are visited row by
// row, left to right.
Tensor run_tiled(const Tensor& x, int64_t grid_h, int64_t grid_w, int64_t in_scale, int64_t out_scale,
                 const VaeTiling& tiling, const std::function<Tensor(const Tensor&)>& fn);

// The layout of lockstep tiles for passes that read `reach` latent pixels around a position
// (Flux2Vae::decode_tail_reach, encode_down_reach): the overlap grown to twice the reach and a pixel each side, the
// tile to twice that where it was smaller, so the part of each tile that is kept is computed as untiled.
VaeTiling lockstep_layout(const VaeTiling& tiling, double reach);

// Flux2Vae::decode / encode_mean over tiles (whatever the size; use VaeTiling::applies to decide). Up to
// VaeTiling::lockstep sizes the tiles run in lockstep and are stitched (exact up to float rounding); above it each
// tile runs the whole pass and the overlaps are blended (run_tiled).
Tensor decode_tiled(const Flux2Vae& vae, const Tensor& z, const VaeTiling& tiling);
Tensor encode_mean_tiled(const Flux2Vae& vae, const Tensor& image, const VaeTiling& tiling);

// Tiled when tiling.applies to the image size (logged with the tile layout and why), else the plain pass.
Tensor vae_decode(const Flux2Vae& vae, const Tensor& z, const VaeTiling& tiling);
Tensor vae_encode_mean(const Flux2Vae& vae, const Tensor& image, const VaeTiling& tiling);

}  // namespace flux2
