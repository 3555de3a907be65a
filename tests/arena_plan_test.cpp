// ArenaPlan (backend/arena_plan.h): where a recorded step's allocations go in the graph arena. Blocks never overlap
// while live, offsets are aligned, freed space is reused by best fit and merged with its neighbours, and the arena
// ends where its live blocks end.
#include "backend/arena_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>
#include <random>
#include <stdexcept>

namespace flux2 {
namespace {

constexpr size_t kAlign = ArenaPlan::alignment;

TEST(ArenaPlan, RoundsUpToTheAlignmentAndReusesAFreedBlock) {
    ArenaPlan plan;
    const size_t a = plan.take(1), b = plan.take(kAlign + 1), c = plan.take(0);
    EXPECT_EQ(a, 0u);
    EXPECT_EQ(b, kAlign);
    EXPECT_EQ(c, 3 * kAlign);
    EXPECT_EQ(plan.live(), 4 * kAlign);
    plan.give(b);
    EXPECT_EQ(plan.take(2 * kAlign), kAlign);  // the gap fits exactly
    EXPECT_EQ(plan.high(), 4 * kAlign);
}

TEST(ArenaPlan, TakesTheSmallestGapThatFits) {
    ArenaPlan plan;
    const size_t big = plan.take(8 * kAlign), sep1 = plan.take(kAlign), small = plan.take(3 * kAlign),
                 sep2 = plan.take(kAlign);
    EXPECT_EQ(sep1, 8 * kAlign);
    plan.give(big);
    plan.give(small);
    EXPECT_EQ(plan.take(2 * kAlign), small);           // 3-unit gap, not the 8-unit one
    EXPECT_EQ(plan.take(kAlign), small + 2 * kAlign);  // the rest of it
    EXPECT_EQ(plan.take(5 * kAlign), big);             // then the big gap
    EXPECT_EQ(plan.take(9 * kAlign), sep2 + kAlign);   // nothing fits: the end moves
    EXPECT_EQ(plan.high(), sep2 + 10 * kAlign);
}

TEST(ArenaPlan, MergesNeighboursAndLowersTheEnd) {
    ArenaPlan plan;
    const size_t a = plan.take(kAlign), b = plan.take(kAlign), c = plan.take(kAlign), d = plan.take(kAlign);
    plan.give(a);
    plan.give(c);
    plan.give(b);  // a, b and c are one gap now
    EXPECT_EQ(plan.take(3 * kAlign), a);
    plan.give(a);
    plan.give(d);  // everything free: the arena is empty again
    EXPECT_EQ(plan.blocks(), 0u);
    EXPECT_EQ(plan.live(), 0u);
    EXPECT_EQ(plan.take(10 * kAlign), 0u);
    EXPECT_EQ(plan.high(), 10 * kAlign);
    EXPECT_EQ(plan.live_high(), 10 * kAlign);
}

TEST(ArenaPlan, RejectsAnOffsetItDidNotGive) {
    ArenaPlan plan;
    const size_t a = plan.take(100);
    EXPECT_THROW(plan.give(a + kAlign), std::runtime_error);
    plan.give(a);
    EXPECT_THROW(plan.give(a), std::runtime_error);  // twice
}

// A step-like random sequence (a few long-lived blocks, many short ones of mixed sizes): live blocks never overlap,
// stay aligned and inside high(), and the plan's live counts match the blocks'.
TEST(ArenaPlan, RandomSequencesKeepLiveBlocksApart) {
    std::mt19937_64 rng(7);
    for (int round = 0; round < 20; ++round) {
        ArenaPlan plan;
        std::map<size_t, size_t> live;  // offset -> requested bytes
        size_t live_bytes = 0, live_high = 0;
        for (int op = 0; op < 2000; ++op) {
            const bool give = !live.empty() && (rng() % 100) < 45;
            if (give) {
                auto it = live.begin();
                std::advance(it, rng() % live.size());
                live_bytes -= (it->second + kAlign - 1) / kAlign * kAlign;
                plan.give(it->first);
                live.erase(it);
            } else {
                const size_t bytes = 1 + rng() % (rng() % 4 == 0 ? (64u << 20) : (1u << 20));
                const size_t offset = plan.take(bytes);
                ASSERT_EQ(offset % kAlign, 0u);
                ASSERT_LE(offset + bytes, plan.high());
                const auto next = live.lower_bound(offset);
                if (next != live.end()) {
                    ASSERT_LE(offset + bytes, next->first) << "overlaps the block after";
                }
                if (next != live.begin()) {
                    const auto prev = std::prev(next);
                    ASSERT_LE(prev->first + prev->second, offset) << "overlaps the block before";
                }
                live.emplace(offset, bytes);
                live_bytes += (bytes + kAlign - 1) / kAlign * kAlign;
                live_high = std::max(live_high, live_bytes);
            }
            ASSERT_EQ(plan.live(), live_bytes);
            ASSERT_EQ(plan.blocks(), live.size());
        }
        EXPECT_EQ(plan.live_high(), live_high);
        EXPECT_GE(plan.high(), plan.live_high());
    }
}

}  // namespace
}  // namespace flux2
