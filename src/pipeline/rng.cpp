#include "pipeline/rng.h"

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {

namespace {

// Multipliers and Weyl key increments of Philox4x32 (Salmon et al. 2011, Random123).
constexpr uint32_t kPhiloxM0 = 0xD2511F53u;
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

inline void mul_hi_lo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
    const uint64_t p = static_cast<uint64_t>(a) * b;
    *hi = static_cast<uint32_t>(p >> 32);
    *lo = static_cast<uint32_t>(p);
}

inline double to_open_unit(uint32_t w) { return (static_cast<double>(w) + 0.5) * 0x1.0p-32; }

// Four normals from one Philox block.
inline void normals_of_block(uint64_t seed, uint64_t block, float out[4]) {
    const PhiloxKey key = {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
    const PhiloxCounter ctr = {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u};
    const PhiloxCounter w = philox4x32_10(ctr, key);
    for (int pair = 0; pair < 2; ++pair) {
        const double r = std::sqrt(-2.0 * std::log(to_open_unit(w[2 * pair])));
        const double theta = 2.0 * std::numbers::pi * to_open_unit(w[2 * pair + 1]);
        out[2 * pair] = static_cast<float>(r * std::cos(theta));
        out[2 * pair + 1] = static_cast<float>(r * std::sin(theta));
    }
}

void fill_normals(uint64_t seed, int64_t offset, int64_t count, float* dst) {
    // Blocks are independent, so threads take disjoint block ranges and the result does not depend on the split.
    const int64_t first_block = offset / 4;
    const int64_t last_block = (offset + count - 1) / 4;
    parallel_for(last_block - first_block + 1, 4096, [&](int64_t b0, int64_t b1) {
        float vals[4];
        for (int64_t b = first_block + b0; b < first_block + b1; ++b) {
            normals_of_block(seed, static_cast<uint64_t>(b), vals);
            for (int lane = 0; lane < 4; ++lane) {
                const int64_t i = b * 4 + lane - offset;
                if (i >= 0 && i < count) dst[i] = vals[lane];
            }
        }
    });
}

}  // namespace

PhiloxCounter philox4x32_10(PhiloxCounter c, PhiloxKey k) {
    for (int round = 0; round < 10; ++round) {
        if (round > 0) {
            k[0] += kPhiloxW0;
            k[1] += kPhiloxW1;
        }
        uint32_t hi0, lo0, hi1, lo1;
        mul_hi_lo(kPhiloxM0, c[0], &hi0, &lo0);
        mul_hi_lo(kPhiloxM1, c[2], &hi1, &lo1);
        c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    }
    return c;
}

std::vector<float> normal_stream(uint64_t seed, int64_t count, int64_t offset) {
    check(count >= 0 && offset >= 0, "normal_stream: negative count ", count, " or offset ", offset);
    std::vector<float> out(static_cast<size_t>(count));
    if (count > 0) fill_normals(seed, offset, count, out.data());
    return out;
}

Tensor initial_noise(uint64_t seed, int batch, int height, int width) {
    check(batch > 0, "initial_noise: batch must be positive, got ", batch);
    check(height > 0 && width > 0 && height % 16 == 0 && width % 16 == 0, "initial_noise: image size ", width, "x",
          height, " must be positive multiples of 16");
    const Shape shape = {batch, 128, height / 16, width / 16};
    Tensor noise = Tensor::zeros(shape);
    const int64_t per_image = shape_numel(shape) / batch;
    for (int b = 0; b < batch; ++b)
        fill_normals(seed + static_cast<uint64_t>(b), 0, per_image, noise.f32() + b * per_image);
    return noise;
}

}  // namespace flux2
