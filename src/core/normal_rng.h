#pragma once
// Standard-normal numbers from mt19937_64 (whose output the C++ standard fixes) through Box-Muller, so synthetic
// weights are identical on every platform and standard library (std::normal_distribution is not).
#include <cmath>
#include <cstdint>
#include <random>

namespace flux2 {

class NormalRng {
public:
    explicit NormalRng(uint64_t seed) : gen_(seed) {}
    float normal() {
        const double u1 = (static_cast<double>(gen_() >> 11) + 0.5) * 0x1.0p-53;
        const double u2 = static_cast<double>(gen_() >> 11) * 0x1.0p-53;
        return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
    }
    // Uniform in [0, 1) with 24 random bits.
    float uniform() { return static_cast<float>(gen_() >> 40) * 0x1.0p-24f; }
    uint64_t bits() { return gen_(); }

private:
    std::mt19937_64 gen_;
};

// out[i] = mean + stddev * N(0, 1) for i in [0, n). Blocks of 4096 values each come from their own NormalRng seeded
// by (seed, block index), so the fill runs in parallel and gives the same values for any number of threads.
void fill_normal(float* out, int64_t n, uint64_t seed, float mean, float stddev);

}  // namespace flux2
