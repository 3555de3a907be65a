#include "core/normal_rng.h"

#include <algorithm>

#include "core/parallel.h"

namespace flux2 {

void fill_normal(float* out, int64_t n, uint64_t seed, float mean, float stddev) {
    constexpr int64_t kBlock = 4096;
    const int64_t blocks = (n + kBlock - 1) / kBlock;
    parallel_for(blocks, 4, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            NormalRng rng(seed ^ (static_cast<uint64_t>(b) * 0x9E3779B97F4A7C15ull));
            const int64_t end = std::min(n, (b + 1) * kBlock);
            for (int64_t i = b * kBlock; i < end; ++i) out[i] = mean + stddev * rng.normal();
        }
    });
}

}  // namespace flux2
