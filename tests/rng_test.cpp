#include "pipeline/rng.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {
namespace {

// Random123 tests/kat_vectors, "philox4x32 10" lines: counter, key -> output.
TEST(Rng, PhiloxKnownAnswers) {
    EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (PhiloxCounter{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
    EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
              (PhiloxCounter{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
    EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
              (PhiloxCounter{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(Rng, StreamIsDeterministicAndSeeded) {
    EXPECT_EQ(normal_stream(42, 1000), normal_stream(42, 1000));
    EXPECT_NE(normal_stream(42, 1000), normal_stream(43, 1000));
    // Seeds differing only in the high word must differ too (both key words are used).
    EXPECT_NE(normal_stream(1, 16), normal_stream(1 + (uint64_t{1} << 32), 16));
}

TEST(Rng, OffsetsAddressTheSameStream) {
    const auto full = normal_stream(7, 103);
    for (int64_t offset : {0, 1, 3, 4, 5, 50}) {
        const auto part = normal_stream(7, 103 - offset, offset);
        for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(part[i], full[offset + i]) << offset << " " << i;
    }
}

TEST(Rng, IndependentOfThreadCount) {
    const int saved = num_threads();
    set_num_threads(1);
    const auto one = normal_stream(9, 100003);
    set_num_threads(4);
    const auto four = normal_stream(9, 100003);
    set_num_threads(saved);
    EXPECT_EQ(one, four);
}

TEST(Rng, StandardNormalMoments) {
    const auto x = normal_stream(1234, 1 << 20);
    double sum = 0, sum2 = 0, sum4 = 0;
    int64_t beyond3 = 0;
    for (float v : x) {
        ASSERT_TRUE(std::isfinite(v));
        sum += v;
        sum2 += double{v} * v;
        sum4 += double{v} * v * v * v;
        beyond3 += std::fabs(v) > 3.0f;
    }
    const double n = static_cast<double>(x.size());
    EXPECT_NEAR(sum / n, 0.0, 5e-3);  // ~5 standard errors
    EXPECT_NEAR(sum2 / n, 1.0, 7e-3);
    EXPECT_NEAR(sum4 / n, 3.0, 5e-2);        // kurtosis of a Gaussian
    EXPECT_NEAR(beyond3 / n, 0.0027, 4e-4);  // two-sided 3-sigma tail
}

TEST(Rng, InitialNoiseLayoutAndBatchSeeds) {
    const Tensor noise = initial_noise(5, 2, 64, 32);
    ASSERT_EQ(noise.shape(), (Shape{2, 128, 4, 2}));
    const auto first = normal_stream(5, 128 * 8);
    const auto second = normal_stream(6, 128 * 8);
    const float* p = noise.f32();
    for (int i = 0; i < 128 * 8; ++i) {
        ASSERT_EQ(p[i], first[i]);
        ASSERT_EQ(p[128 * 8 + i], second[i]);
    }
    EXPECT_THROW(initial_noise(5, 1, 60, 64), Error);
    EXPECT_THROW(initial_noise(5, 0, 64, 64), Error);
}

}  // namespace
}  // namespace flux2
