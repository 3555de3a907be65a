// parallel_for over the persistent worker pool: every index exactly once, exceptions reach the caller, nested and
// concurrent calls (the CPU ranks of --gpus call it from several threads at once), thread-count changes.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/parallel.h"

namespace flux2 {
namespace {

// Restores the thread count a test changes.
struct ThreadCount {
    int saved = num_threads();
    explicit ThreadCount(int n) { set_num_threads(n); }
    ~ThreadCount() { set_num_threads(saved); }
};

std::vector<int> visit_counts(int64_t n, int64_t grain) {
    std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
    parallel_for(n, grain, [&](int64_t b, int64_t e) {
        ASSERT_LE(0, b);
        ASSERT_LT(b, e);
        ASSERT_LE(e, n);
        for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)]++;
    });
    std::vector<int> out;
    for (auto& s : seen) out.push_back(s.load());
    return out;
}

TEST(ParallelFor, CoversEveryIndexOnceForManyShapes) {
    ThreadCount threads(4);
    for (int round = 0; round < 200; ++round) {  // many jobs in a row: the pool is reused between them
        const int64_t n = 1 + (round * 37) % 1000, grain = 1 + round % 17;
        const std::vector<int> counts = visit_counts(n, grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(counts[static_cast<size_t>(i)], 1) << "n " << n << " i " << i;
    }
    parallel_for(0, 1, [](int64_t, int64_t) { FAIL() << "called for an empty range"; });
}

TEST(ParallelFor, RunsChunksOnSeveralThreads) {
    ThreadCount threads(4);
    std::atomic<int> inside{0}, most{0};
    parallel_for(4, 1, [&](int64_t, int64_t) {
        const int now = ++inside;
        int m = most.load();
        while (now > m && !most.compare_exchange_weak(m, now)) {
        }
        // Stay until another chunk has started too, or give up after a while (a 1-core machine is still correct).
        for (int spin = 0; spin < 200000 && most.load() < 2; ++spin) std::this_thread::yield();
        --inside;
    });
    EXPECT_GE(most.load(), 2) << "no two chunks ran at the same time";
}

TEST(ParallelFor, RethrowsAChunksException) {
    ThreadCount threads(4);
    EXPECT_THROW(parallel_for(100, 1,
                              [](int64_t b, int64_t) {
                                  if (b > 0) throw std::runtime_error("chunk failed");
                              }),
                 std::runtime_error);
    // The pool is still usable afterwards.
    const std::vector<int> counts = visit_counts(100, 1);
    for (int c : counts) EXPECT_EQ(c, 1);
}

TEST(ParallelFor, NestedCallsRunInline) {
    ThreadCount threads(4);
    std::atomic<int64_t> total{0};
    parallel_for(8, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) parallel_for(10, 1, [&](int64_t ib, int64_t ie) { total += ie - ib; });
    });
    EXPECT_EQ(total.load(), 80);
}

TEST(ParallelFor, ConcurrentCallersEachGetTheirWorkDone) {
    ThreadCount threads(3);
    std::vector<std::thread> callers;
    std::vector<int64_t> sums(6, 0);
    for (size_t t = 0; t < sums.size(); ++t) {
        callers.emplace_back([&, t] {
            for (int round = 0; round < 50; ++round) {
                std::atomic<int64_t> sum{0};
                parallel_for(1000, 7, [&](int64_t b, int64_t e) {
                    for (int64_t i = b; i < e; ++i) sum += i;
                });
                sums[t] += sum.load();
            }
        });
    }
    for (auto& c : callers) c.join();
    for (int64_t s : sums) EXPECT_EQ(s, 50 * 999 * 1000 / 2);
}

TEST(ParallelFor, FollowsThreadCountChanges) {
    for (int n : {1, 2, 5, 3}) {
        ThreadCount threads(n);
        const std::vector<int> counts = visit_counts(97, 1);
        for (int c : counts) ASSERT_EQ(c, 1) << n << " threads";
    }
}

}  // namespace
}  // namespace flux2
