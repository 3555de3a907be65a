#pragma once
// Image-side steps of the pipeline: PIL-compatible Lanczos resize and center crop, reference-image preprocessing
// (FLUX2_SPEC.md §2.8) and the conversion of decoded VAE output to images (§2.7).
#include "io/image.h"
#include "tensor/tensor.h"

namespace flux2 {

// PIL Image.resize(..., LANCZOS) on RGB8: separable Lanczos-3 whose support widens by the downscale factor,
// horizontal pass first, 8-bit intermediate and 22-bit fixed-point coefficients exactly as Pillow's Resample.c does,
// so results match Pillow byte for byte.
Image resize_lanczos(const Image& src, int width, int height);

// PIL crop((W - width) // 2, (H - height) // 2, ...) for width <= W, height <= H.
Image center_crop(const Image& src, int width, int height);

// Reference-image preprocessing of Flux2Pipeline: checks (sides >= 64, aspect ratio <= 8), downscale to an area of
// about 1024^2 when larger (int() truncated sides, Lanczos), floor both sides to multiples of 16 by a center crop,
// then [0, 255] -> [-1, 1] in float32 (x / 255, then 2x - 1) as [1, 3, h, w].
Tensor preprocess_reference_image(const Image& image);

// Decoded VAE output [B, 3, H, W] in about [-1, 1] -> [B, H, W, 3] in [0, 1]: clamp(x * 0.5 + 0.5, 0, 1).
Tensor postprocess_to_unit(const Tensor& decoded);
// Image `index` of a [B, H, W, 3] tensor in [0, 1] -> RGB8 with round-half-to-even(255 x), as numpy does.
Image unit_tensor_to_image(const Tensor& unit, int index);

}  // namespace flux2
