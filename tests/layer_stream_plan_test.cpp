// The host-side decisions of --offload layers (backend/layer_stream_plan.h): which groups stay resident within the
// budget and where, the even picks (also of the groups streamed as E4M3), and the page split that decides what is
// page-locked in place and what is copied to the edge buffer.
#include "backend/layer_stream_plan.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"

namespace flux2 {
namespace {

TEST(LayerStreamPlan, TheBiggestStreamersStayResidentWithinTheBudget) {
    // Groups 1 and 3 stream the most; resident sizes differ from streamed ones (E4M3 vs 4-bit).
    const std::vector<int64_t> stream{10, 40, 0, 40, 20}, resident{18, 71, 5, 71, 36};
    EXPECT_EQ(choose_resident_groups(stream, resident, 0), std::vector<bool>(5, false));
    // Every group that streams anything fits; the one that streams nothing is never "kept".
    EXPECT_EQ(choose_resident_groups(stream, resident, 1000), (std::vector<bool>{true, true, false, true, true}));
    // 100: group 1 (first of the tied biggest) fits, group 3 no longer does; then 20 (36 > 29 left: no), 10 (18: yes).
    EXPECT_EQ(choose_resident_groups(stream, resident, 100), (std::vector<bool>{true, true, false, false, false}));
    // 142: both of the biggest, nothing else fits in what is left (0).
    EXPECT_EQ(choose_resident_groups(stream, resident, 142), (std::vector<bool>{false, true, false, true, false}));
    // A budget smaller than any group keeps none.
    EXPECT_EQ(choose_resident_groups(stream, resident, 17), std::vector<bool>(5, false));
    EXPECT_THROW(choose_resident_groups({1, 2}, {1}, 10), Error);
}

TEST(LayerStreamPlan, PickEvenlyTakesTheMiddlesOfEqualParts) {
    EXPECT_EQ(pick_evenly(4, 0), std::vector<bool>(4, false));
    EXPECT_EQ(pick_evenly(4, 1), (std::vector<bool>{false, false, true, false}));
    EXPECT_EQ(pick_evenly(6, 2), (std::vector<bool>{false, true, false, false, true, false}));
    EXPECT_EQ(pick_evenly(3, 5), std::vector<bool>(3, true));
    for (size_t n = 1; n < 60; ++n) {
        for (size_t count = 0; count <= n; ++count) {
            const std::vector<bool> pick = pick_evenly(n, count);
            std::vector<size_t> at;
            for (size_t i = 0; i < n; ++i)
                if (pick[i]) at.push_back(i);
            ASSERT_EQ(at.size(), count) << n << " " << count;
            // Every gap between picks (and before the first, after the last) differs from the others by at most 1.
            for (size_t i = 1; i < at.size(); ++i) {
                const size_t gap = at[i] - at[i - 1];
                EXPECT_TRUE(gap == n / count || gap == (n + count - 1) / count) << n << " " << count << " " << i;
            }
        }
    }
}

TEST(LayerStreamPlan, ResidentGroupsSpreadWithinEachClassOfLikeGroups) {
    // Dev-like: 2 double blocks (class A), then 8 single blocks (class B), then a group that streams nothing.
    std::vector<int64_t> stream{50, 50, 20, 20, 20, 20, 20, 20, 20, 20, 0};
    std::vector<int64_t> resident{90, 90, 40, 40, 40, 40, 40, 40, 40, 40, 7};
    // The budget keeps both double blocks and the first two single blocks.
    const std::vector<bool> chosen = choose_resident_groups(stream, resident, 260);
    ASSERT_EQ(chosen, (std::vector<bool>{true, true, true, true, false, false, false, false, false, false, false}));
    const std::vector<bool> spread = spread_resident_groups(chosen, stream, resident);
    // Class A keeps both; class B's two move to the middles of its halves (positions 2 and 6 of 8 -> groups 4, 8).
    EXPECT_EQ(spread, (std::vector<bool>{true, true, false, false, true, false, false, false, true, false, false}));
    // Same count per class, so the same bytes resident and streamed.
    int64_t before = 0, after = 0;
    for (size_t g = 0; g < stream.size(); ++g) {
        before += chosen[g] ? resident[g] : 0;
        after += spread[g] ? resident[g] : 0;
    }
    EXPECT_EQ(before, after);
    // A class entirely resident or entirely streamed stays so; sizes must agree.
    EXPECT_EQ(spread_resident_groups(std::vector<bool>(11, false), stream, resident), std::vector<bool>(11, false));
    EXPECT_THROW(spread_resident_groups({true}, {1, 2}, {1, 2}), Error);
}

TEST(LayerStreamPlan, PageSplitCoversTheRangeOnceWithWholePagesInTheMiddle) {
    const size_t page = 4096;
    EXPECT_EQ(split_at_pages(8192, 3 * page, page).body, 3 * page);  // aligned: all body
    const PageSplit inside = split_at_pages(8192 + 10, 100, page);   // within one page: all head
    EXPECT_EQ(inside.head, 100u);
    EXPECT_EQ(inside.body + inside.tail, 0u);
    const PageSplit across = split_at_pages(8192 + 4000, 200, page);  // across a boundary, no whole page
    EXPECT_EQ(across.head, 200u);
    std::mt19937_64 rng(7);
    for (int i = 0; i < 2000; ++i) {
        const uintptr_t address = rng() % (uintptr_t{1} << 40);
        const size_t bytes = rng() % (8 * page);
        const PageSplit s = split_at_pages(address, bytes, page);
        ASSERT_EQ(s.head + s.body + s.tail, bytes) << address << " " << bytes;
        if (s.body == 0) {
            EXPECT_EQ(s.tail, 0u);
            continue;
        }
        EXPECT_EQ((address + s.head) % page, 0u);
        EXPECT_EQ(s.body % page, 0u);
        EXPECT_LT(s.head, page);
        EXPECT_LT(s.tail, page);
        EXPECT_EQ((address + s.head + s.body) % page, 0u);
    }
}

}  // namespace
}  // namespace flux2
