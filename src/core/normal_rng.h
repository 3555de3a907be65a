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

private:
    std::mt19937_64 gen_;
};

}  // namespace flux2
