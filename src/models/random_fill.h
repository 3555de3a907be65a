#pragma once
// Deterministic random linear weights, fast enough for real sizes (tens of billions of values): each row draws from
// its own splitmix64 stream seeded by layer and row, so rows fill in parallel and reproducibly. Used by the in-memory
// benchmark weights (RandomFlux2Weights, RandomDecoderWeights); values are sized like a trained layer's (W std
// ~ target_std), pictures made with them are noise.
#include <cstdint>

#include "quant/linear_weight.h"

namespace flux2 {

inline uint64_t splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// w as a [out, in] linear of each format with random values of standard deviation ~target_std:
// NVFP4: uniform E2M1 codes, block scales spread over [0.5, 2), weight_scale_2 to match (needs in % 16 == 0);
// BF16: uniform values; FP8: uniform E4M3 codes (no NaN), one per-tensor scale to match.
void fill_random_nvfp4(LinearWeight& w, int64_t out, int64_t in, uint64_t layer_seed, float target_std);
void fill_random_bf16(LinearWeight& w, int64_t out, int64_t in, uint64_t layer_seed, float target_std);
void fill_random_fp8(LinearWeight& w, int64_t out, int64_t in, uint64_t layer_seed, float target_std);
// values [rows, cols] uniform with the given mean and standard deviation.
void fill_random_uniform(float* values, int64_t rows, int64_t cols, uint64_t seed, float mean, float stddev);

}  // namespace flux2
