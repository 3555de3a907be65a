// The in-process fake communicator's collectives (backend/communicator.h), N ranks as N threads.
#include "backend/communicator.h"

#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "core/error.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

// Runs body(comm) on every rank of a fresh group, one thread each; rethrows the first rank's failure.
void on_ranks(int n, const std::function<void(Communicator&)>& body) {
    FakeCommunicatorGroup group(n);
    std::vector<std::exception_ptr> errors(n);
    std::vector<std::thread> threads;
    for (int r = 0; r < n; ++r)
        threads.emplace_back([&, r, comm = group.rank(r)] {
            try {
                body(*comm);
            } catch (...) {
                errors[r] = std::current_exception();
            }
        });
    for (auto& t : threads) t.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

Tensor filled(int64_t n, float value) { return Tensor::from_f32({n}, std::vector<float>(n, value)); }

class FakeCommunicatorTest : public ::testing::TestWithParam<int> {};

TEST_P(FakeCommunicatorTest, AllToAllDeliversEachChunkToItsRank) {
    const int n = GetParam();
    on_ranks(n, [n](Communicator& c) {
        EXPECT_EQ(c.size(), n);
        // Rank r sends r + 1 elements of value 100 r + p to rank p: uneven chunks, as uneven token shards make.
        std::vector<Tensor> send(n), recv(n);
        for (int p = 0; p < n; ++p) {
            send[p] = filled(c.rank() + 1, 100.0f * c.rank() + p);
            recv[p] = filled(p + 1, -1.0f);
        }
        c.all_to_all(send, recv);
        for (int p = 0; p < n; ++p)
            EXPECT_EQ(recv[p].to_vector(), std::vector<float>(p + 1, 100.0f * p + c.rank())) << "from rank " << p;
    });
}

TEST_P(FakeCommunicatorTest, AllGatherCollectsEveryRank) {
    const int n = GetParam();
    on_ranks(n, [n](Communicator& c) {
        Tensor mine = filled(2 * c.rank() + 1, static_cast<float>(c.rank()));
        std::vector<Tensor> all(n);
        for (int p = 0; p < n; ++p) all[p] = filled(2 * p + 1, -1.0f);
        c.all_gather(mine, all);
        for (int p = 0; p < n; ++p) EXPECT_EQ(all[p].to_vector(), std::vector<float>(2 * p + 1, float(p)));
    });
}

TEST_P(FakeCommunicatorTest, AllReduceSumsOnEveryRank) {
    const int n = GetParam();
    on_ranks(n, [n](Communicator& c) {
        // Repeated, so a rank that ran ahead into the next reduction would show as a wrong sum.
        for (int round = 0; round < 3; ++round) {
            Tensor x = Tensor::from_f32({3}, {float(c.rank()), 1.0f, float(round)});
            c.all_reduce_sum(x);
            EXPECT_EQ(x.to_vector(), (std::vector<float>{n * (n - 1) / 2.0f, float(n), float(n * round)}));
        }
        c.barrier();
    });
}

// Like NCCL's destroy, close waits for every rank (a rank that closed alone would hang the CPU tests, as it would
// hang the GPUs); afterwards every collective fails by name, and a second close does nothing.
TEST_P(FakeCommunicatorTest, CloseIsCollectiveAndFinal) {
    on_ranks(GetParam(), [](Communicator& c) {
        c.close();
        c.close();
        Tensor x = filled(2, 1.0f);
        test::expect_error([&] { c.all_reduce_sum(x); }, {"rank " + std::to_string(c.rank()) + " used after close"});
        test::expect_error([&] { c.barrier(); }, {"used after close"});
    });
}

INSTANTIATE_TEST_SUITE_P(Ranks, FakeCommunicatorTest, ::testing::Values(1, 2, 3, 4));

TEST(FakeCommunicator, RefusesMismatchedChunksNamingBothRanks) {
    test::expect_error(
        [] {
            on_ranks(1, [](Communicator& c) {
                std::vector<Tensor> send{filled(3, 0.0f)}, recv{filled(2, 0.0f)};
                c.all_to_all(send, recv);
            });
        },
        {"rank 0 sent 3 elements to rank 0", "receive tensor holds 2"});
}

}  // namespace
}  // namespace flux2
