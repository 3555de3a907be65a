#pragma once
// Seeded, platform-independent Gaussian noise for the initial latents (docs/PIPELINE.md, "Initial noise").
//
// Generator: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), a counter-based
// generator: output block j of a stream is a pure function of (key, counter j), so any element can be computed
// independently, in any order, on any thread or device. The 64-bit seed is the key (low word first); counter words
// are (j low, j high, 0, 0). Each block's four 32-bit words become two uniform pairs u = (w + 0.5) / 2^32 in (0, 1)
// and Box-Muller turns each pair (u1, u2) into r*cos(2*pi*u2), r*sin(2*pi*u2) with r = sqrt(-2 ln u1), computed in
// float64 and rounded once to float32. Element i of the stream is lane i % 4 of block i / 4.
#include <array>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace flux2 {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

// The raw block function (10 rounds), checked against the Random123 known-answer vectors.
PhiloxCounter philox4x32_10(PhiloxCounter counter, PhiloxKey key);

// Elements [offset, offset + count) of the standard-normal stream of `seed`.
std::vector<float> normal_stream(uint64_t seed, int64_t count, int64_t offset = 0);

// Initial noise in the patchified layout [batch, 128, height/16, width/16] (height, width: image pixels, multiples of
// 16). Image b of the batch is filled with the stream of seed + b (row-major within the image), so a single image of
// a batch can be reproduced on its own with its seed.
Tensor initial_noise(uint64_t seed, int batch, int height, int width);

}  // namespace flux2
