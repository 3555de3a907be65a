#pragma once
// Latent layouts of FLUX.2 (FLUX2_SPEC.md §2.3): the VAE works on [B, 32, H/8, W/8]; the transformer sees 2x2
// patches of it as 128 channels [B, 128, H/16, W/16] (channel = c*4 + py*2 + px), packed into tokens
// [B, (H/16)*(W/16), 128] in row-major order. Position ids are F32 [L, 4] rows (t, row, col, l).
// All functions work on host F32 tensors and return new tensors unless they say "in place".
#include <cstdint>
#include <utility>
#include <vector>

#include "models/vae/latent_batch_norm.h"
#include "tensor/tensor.h"

namespace flux2 {

// [B, C, h, w] -> [B, h*w, C] (token index = row*w + col).
Tensor pack_latents(const Tensor& x);
// [B, h*w, C] -> [B, C, h, w], the inverse of pack_latents.
Tensor unpack_latents(const Tensor& tokens, int64_t h, int64_t w);
// Scatters each token to the (row, col) of its id (diffusers _unpack_latents_with_ids): tokens [B, L, C], ids [L, 4];
// the grid is (max row + 1) x (max col + 1) and every cell must be named exactly once.
Tensor unpack_latents_with_ids(const Tensor& tokens, const Tensor& ids);

// [B, C, 2h, 2w] -> [B, 4C, h, w] with output channel c*4 + py*2 + px.
Tensor patchify_latents(const Tensor& z);
// [B, 4C, h, w] -> [B, C, 2h, 2w], the inverse of patchify_latents.
Tensor unpatchify_latents(const Tensor& x);

// Target image tokens: (0, row, col, 0) for a grid of h x w tokens, row-major -> [h*w, 4].
Tensor image_position_ids(int64_t h, int64_t w);
// Text tokens: (0, 0, 0, k) for k = 0..n-1 -> [n, 4].
Tensor text_position_ids(int64_t n);
// Reference images n = 0, 1, ... with token grids sizes[n] = (h, w): (10*(n+1), row, col, 0), concatenated in order
// -> [sum h*w, 4].
Tensor reference_position_ids(const std::vector<std::pair<int64_t, int64_t>>& sizes);

// In place on patchified latents [B, 128, h, w]: (x - mean) / sqrt(var + eps) (reference-image encoding).
void batch_norm_normalize(Tensor& x, const LatentBatchNorm& bn);
// In place: x * sqrt(var + eps) + mean (before decoding).
void batch_norm_denormalize(Tensor& x, const LatentBatchNorm& bn);

}  // namespace flux2
