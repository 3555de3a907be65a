// The host-side decisions of --offload layers (backend/layer_stream_plan.h): which groups stay resident within the
// budget, and the page split that decides what is page-locked in place and what is copied to the edge buffer.
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
