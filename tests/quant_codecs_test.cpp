// Exhaustive tests of the scalar float codecs (quant/float_codecs.h): every code of the small formats, every
// 16-bit pattern, ties-to-even, saturation and subnormals. Encoders are checked against a brute-force
// "nearest representable value, ties to the even code" search over the decoded table.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "quant/float_codecs.h"

namespace flux2 {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Finite non-negative values of a format with their magnitude codes, sorted by value.
struct Grid {
    std::vector<float> values;
    std::vector<uint32_t> codes;
};

template <class Decode>
Grid make_grid(uint32_t n_codes, uint32_t sign_bit, Decode decode) {
    Grid g;
    for (uint32_t c = 0; c < n_codes; ++c) {
        if (c & sign_bit) continue;
        const float v = decode(c);
        if (!std::isfinite(v)) continue;
        g.values.push_back(v);
        g.codes.push_back(c);
    }
    return g;  // decoders are monotonic in the magnitude code; checked by the tests below
}

// Reference rounding of |x| to the grid: nearest value, ties to the code with an even mantissa (even code).
// Returns the index into the grid, or grid.size() when |x| is beyond the last value by more than half a step
// (the step being the one the format would take next, passed in as `next_step`).
size_t nearest_even(const Grid& g, float x, float next_step) {
    const double ax = std::fabs(static_cast<double>(x));
    const auto it = std::lower_bound(g.values.begin(), g.values.end(), static_cast<float>(ax));
    if (it == g.values.end()) {
        const double top = g.values.back();
        const double mid = top + next_step / 2.0;
        if (ax < mid) return g.values.size() - 1;
        if (ax == mid) return (g.codes.back() & 1) ? g.values.size() : g.values.size() - 1;
        return g.values.size();
    }
    const size_t hi = static_cast<size_t>(it - g.values.begin());
    if (hi == 0 || g.values[hi] == ax) return hi;
    const size_t lo = hi - 1;
    const double d_lo = ax - g.values[lo];
    const double d_hi = g.values[hi] - ax;
    if (d_lo < d_hi) return lo;
    if (d_hi < d_lo) return hi;
    return (g.codes[lo] & 1) ? hi : lo;
}

// Probe values around every grid point and midpoint, plus random floats across the range.
std::vector<float> probes(const Grid& g, float beyond) {
    std::vector<float> p;
    for (size_t i = 0; i < g.values.size(); ++i) {
        const float v = g.values[i];
        p.insert(p.end(), {v, std::nextafter(v, kInf), std::nextafter(v, 0.0f)});
        const float next = i + 1 < g.values.size() ? g.values[i + 1] : beyond;
        const float mid = v + (next - v) / 2;  // exact: neighbours differ by a power-of-two step
        p.insert(p.end(), {mid, std::nextafter(mid, kInf), std::nextafter(mid, 0.0f)});
    }
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(0.0f, beyond * 1.5f);
    std::uniform_real_distribution<float> e(-30.0f, std::log2(beyond * 1.5f));
    for (int i = 0; i < 20000; ++i) {
        p.push_back(u(rng));
        p.push_back(std::exp2(e(rng)));
    }
    return p;
}

// ---- FP8 E4M3 (fn) ----

TEST(Fp8E4m3, DecodesEveryCode) {
    for (int c = 0; c < 256; ++c) {
        const float v = e4m3_to_f32(static_cast<uint8_t>(c));
        const int mag = c & 0x7F;
        if (mag == 0x7F) {
            EXPECT_TRUE(std::isnan(v)) << c;
            continue;
        }
        const int e = mag >> 3, m = mag & 7;
        const double expect = e == 0 ? m * std::pow(2.0, -9) : (1.0 + m / 8.0) * std::pow(2.0, e - 7);
        EXPECT_EQ(v, (c & 0x80) ? -expect : expect) << c;
        EXPECT_EQ(std::signbit(v), (c & 0x80) != 0) << c;
    }
    EXPECT_EQ(e4m3_to_f32(0x7E), 448.0f);
    EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
    EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));  // smallest normal
    EXPECT_EQ(e4m3_to_f32(0x38), 1.0f);
}

TEST(Fp8E4m3, EveryCodeRoundTrips) {
    for (int c = 0; c < 256; ++c) {
        if ((c & 0x7F) == 0x7F) continue;
        EXPECT_EQ(f32_to_e4m3(e4m3_to_f32(static_cast<uint8_t>(c))), c) << c;
    }
}

TEST(Fp8E4m3, EncodeMatchesNearestEven) {
    const Grid g = make_grid(256, 0x80, [](uint32_t c) { return e4m3_to_f32(static_cast<uint8_t>(c)); });
    ASSERT_EQ(g.values.size(), 127u);
    ASSERT_TRUE(std::is_sorted(g.values.begin(), g.values.end()));
    for (float x : probes(g, 480.0f)) {
        size_t i = nearest_even(g, x, 32.0f);
        if (i == g.values.size()) i = g.values.size() - 1;  // saturating
        EXPECT_EQ(f32_to_e4m3(x), g.codes[i]) << x;
        EXPECT_EQ(f32_to_e4m3(-x), g.codes[i] | 0x80) << -x;
    }
}

TEST(Fp8E4m3, TiesSaturationAndSpecials) {
    EXPECT_EQ(f32_to_e4m3(1.0625f), 0x38);                 // halfway 1 / 1.125 -> even (1.0)
    EXPECT_EQ(f32_to_e4m3(1.1875f), 0x3A);                 // halfway 1.125 / 1.25 -> even (1.25)
    EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -10)), 0x00);   // half the smallest subnormal -> 0
    EXPECT_EQ(f32_to_e4m3(std::ldexp(1.5f, -10)), 0x01);   // above half -> smallest subnormal
    EXPECT_EQ(f32_to_e4m3(std::ldexp(3.0f, -10)), 0x02);   // 1.5 subnormal steps, tie -> even (2)
    EXPECT_EQ(f32_to_e4m3(std::ldexp(15.0f, -10)), 0x08);  // rounds up from subnormal into the first normal
    EXPECT_EQ(f32_to_e4m3(464.0f), 0x7E);
    EXPECT_EQ(f32_to_e4m3(1e9f), 0x7E);
    EXPECT_EQ(f32_to_e4m3(kInf), 0x7E);
    EXPECT_EQ(f32_to_e4m3(-kInf), 0xFE);
    EXPECT_EQ(f32_to_e4m3(kNaN), 0x7F);
    EXPECT_EQ(f32_to_e4m3(-0.0f), 0x80);
    EXPECT_EQ(f32_to_e4m3(std::numeric_limits<float>::denorm_min()), 0x00);
}

// ---- FP8 E5M2 ----

TEST(Fp8E5m2, DecodesEveryCode) {
    for (int c = 0; c < 256; ++c) {
        const float v = e5m2_to_f32(static_cast<uint8_t>(c));
        const int mag = c & 0x7F;
        const int e = mag >> 2, m = mag & 3;
        if (e == 31) {
            if (m == 0) {
                EXPECT_EQ(v, (c & 0x80) ? -kInf : kInf) << c;
            } else {
                EXPECT_TRUE(std::isnan(v)) << c;
            }
            continue;
        }
        const double expect = e == 0 ? m * std::pow(2.0, -16) : (1.0 + m / 4.0) * std::pow(2.0, e - 15);
        EXPECT_EQ(v, (c & 0x80) ? -expect : expect) << c;
    }
    EXPECT_EQ(e5m2_to_f32(0x7B), 57344.0f);
    EXPECT_EQ(e5m2_to_f32(0x3C), 1.0f);
}

// ---- E2M1 ----

TEST(E2m1, DecodesEveryCode) {
    const float table[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (int c = 0; c < 16; ++c) {
        const float v = e2m1_to_f32(static_cast<uint8_t>(c));
        EXPECT_EQ(v, (c & 8) ? -table[c & 7] : table[c & 7]) << c;
        EXPECT_EQ(std::signbit(v), (c & 8) != 0) << c;
        EXPECT_EQ(f32_to_e2m1(v), c) << c;
    }
}

TEST(E2m1, EncodeMatchesNearestEven) {
    const Grid g = make_grid(16, 0x8, [](uint32_t c) { return e2m1_to_f32(static_cast<uint8_t>(c)); });
    ASSERT_EQ(g.values.size(), 8u);
    for (float x : probes(g, 8.0f)) {
        size_t i = nearest_even(g, x, 2.0f);
        if (i == g.values.size()) i = g.values.size() - 1;
        EXPECT_EQ(f32_to_e2m1(x), g.codes[i]) << x;
        EXPECT_EQ(f32_to_e2m1(-x), g.codes[i] | 0x8) << -x;
    }
}

TEST(E2m1, TiesAndSaturation) {
    EXPECT_EQ(f32_to_e2m1(0.25f), 0x0);  // 0 / 0.5 -> 0
    EXPECT_EQ(f32_to_e2m1(0.75f), 0x2);  // 0.5 / 1 -> 1
    EXPECT_EQ(f32_to_e2m1(1.25f), 0x2);  // 1 / 1.5 -> 1
    EXPECT_EQ(f32_to_e2m1(1.75f), 0x4);  // 1.5 / 2 -> 2
    EXPECT_EQ(f32_to_e2m1(2.5f), 0x4);   // 2 / 3 -> 2
    EXPECT_EQ(f32_to_e2m1(3.5f), 0x6);   // 3 / 4 -> 4
    EXPECT_EQ(f32_to_e2m1(5.0f), 0x6);   // 4 / 6 -> 4
    EXPECT_EQ(f32_to_e2m1(-5.0f), 0xE);
    EXPECT_EQ(f32_to_e2m1(7.0f), 0x7);
    EXPECT_EQ(f32_to_e2m1(1e30f), 0x7);
    EXPECT_EQ(f32_to_e2m1(-kInf), 0xF);
    EXPECT_EQ(f32_to_e2m1(-0.0f), 0x8);
    EXPECT_EQ(f32_to_e2m1(0.2f), 0x0);
}

// ---- BF16 ----

TEST(Bf16, EveryPatternRoundTrips) {
    for (uint32_t b = 0; b < 65536; ++b) {
        const float v = bf16_to_f32(static_cast<uint16_t>(b));
        EXPECT_EQ(std::bit_cast<uint32_t>(v), b << 16);
        if (std::isnan(v)) {
            EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(v)))) << b;
        } else {
            EXPECT_EQ(f32_to_bf16(v), b) << b;
        }
    }
}

TEST(Bf16, RoundsToNearestEven) {
    auto enc = [](uint32_t bits) { return f32_to_bf16(std::bit_cast<float>(bits)); };
    EXPECT_EQ(enc(0x3F808000u), 0x3F80);  // tie, even below
    EXPECT_EQ(enc(0x3F818000u), 0x3F82);  // tie, even above
    EXPECT_EQ(enc(0x3F808001u), 0x3F81);
    EXPECT_EQ(enc(0x3F807FFFu), 0x3F80);
    EXPECT_EQ(enc(0x7F7FFFFFu), 0x7F80);  // FLT_MAX rounds to infinity
    EXPECT_EQ(enc(0x00008000u), 0x0000);  // subnormal tie -> even
    EXPECT_EQ(enc(0x00018000u), 0x0002);
    EXPECT_EQ(enc(0x807FFFFFu), 0x8080);  // largest negative subnormal carries into the smallest normal
    EXPECT_TRUE(std::isnan(bf16_to_f32(enc(0x7F800001u))));  // a NaN whose payload sits in the low bits
    EXPECT_TRUE(std::isnan(bf16_to_f32(enc(0xFFFFFFFFu))));
}

// ---- F16 ----

TEST(F16, EveryPatternRoundTrips) {
    for (uint32_t b = 0; b < 65536; ++b) {
        const float v = f16_to_f32(static_cast<uint16_t>(b));
        if (std::isnan(v)) {
            EXPECT_EQ(b & 0x7C00u, 0x7C00u) << b;
            EXPECT_NE(b & 0x3FFu, 0u) << b;
            EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(v)))) << b;
            continue;
        }
        EXPECT_EQ(f32_to_f16(v), b) << b;
        const int e = (b >> 10) & 0x1F, m = b & 0x3FF;
        const double expect = e == 31  ? INFINITY
                              : e == 0 ? m * std::pow(2.0, -24)
                                       : (1 + m / 1024.0) * std::pow(2.0, e - 15);
        EXPECT_EQ(v, (b & 0x8000) ? -expect : expect) << b;
    }
}

TEST(F16, EncodeMatchesNearestEven) {
    const Grid g = make_grid(65536, 0x8000, [](uint32_t c) { return f16_to_f32(static_cast<uint16_t>(c)); });
    ASSERT_EQ(g.values.size(), 31744u);
    ASSERT_TRUE(std::is_sorted(g.values.begin(), g.values.end()));
    for (float x : probes(g, 65536.0f)) {
        const size_t i = nearest_even(g, x, 32.0f);
        const uint32_t expect = i == g.values.size() ? 0x7C00u : g.codes[i];  // overflow is infinity
        EXPECT_EQ(f32_to_f16(x), expect) << x;
        EXPECT_EQ(f32_to_f16(-x), expect | 0x8000u) << -x;
    }
}

TEST(F16, TiesOverflowAndSpecials) {
    EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
    EXPECT_EQ(f32_to_f16(65519.99f), 0x7BFF);
    EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);  // tie with the next (missing) step -> even -> infinity
    EXPECT_EQ(f32_to_f16(kInf), 0x7C00);
    EXPECT_EQ(f32_to_f16(-kInf), 0xFC00);
    EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(kNaN))));
    EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);  // half the smallest subnormal -> 0
    EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);  // 1.5 steps -> even
    EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
    EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);
    EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
}

#if defined(__FLT16_MAX__)
// The compiler's own half type converts with round-to-nearest-even: an independent reference.
TEST(F16, AgreesWithCompilerHalf) {
    std::mt19937 rng(11);
    std::uniform_int_distribution<uint32_t> bits;
    for (int i = 0; i < 200000; ++i) {
        const float x = std::bit_cast<float>(bits(rng));
        if (std::isnan(x)) continue;
        const _Float16 h = static_cast<_Float16>(x);
        EXPECT_EQ(f32_to_f16(x), std::bit_cast<uint16_t>(h)) << x;
    }
}
#endif

}  // namespace
}  // namespace flux2
