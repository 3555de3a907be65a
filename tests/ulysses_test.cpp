// Ulysses sequence parallelism (models/flux2/flux2_ulysses.h) on the CPU: N ranks as N threads, each with its own
// CPU backend and copy of the weights, joined by the fake communicator, against the single-device forward on every
// golden case of the tiny models (uneven token shards included: 15 image and 6 text tokens on 2 and 4 ranks).
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_rank_group.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_synthetic.h"
#include "parallel_test_util.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

struct UlyssesCase {
    std::string model;  // "dev" (2 heads) / "klein" (4 heads)
    int ranks;
};

std::ostream& operator<<(std::ostream& os, const UlyssesCase& c) { return os << c.model << " x" << c.ranks; }

class UlyssesSequenceParallel : public ::testing::TestWithParam<UlyssesCase> {};

TEST_P(UlyssesSequenceParallel, MatchesOneDevice) {
    const UlyssesCase& c = GetParam();
    std::ostringstream label;
    label << c;
    test::expect_ranks_match_one_device(
        c.model, "tiny-" + c.model + "-bf16.safetensors", c.ranks,
        [](Flux2Transformer& m, std::shared_ptr<Communicator> comm) { m.set_sequence_parallel(std::move(comm)); },
        label.str());
}

INSTANTIATE_TEST_SUITE_P(TinyModels, UlyssesSequenceParallel,
                         ::testing::Values(UlyssesCase{"dev", 2}, UlyssesCase{"klein", 2}, UlyssesCase{"klein", 4}),
                         [](const ::testing::TestParamInfo<UlyssesCase>& info) {
                             return info.param.model + "_x" + std::to_string(info.param.ranks);
                         });

// The rank group the CLI uses: ranks 1..N-1 in their own threads behind rank 0's forward.
TEST(UlyssesRankGroup, RankZeroForwardDrivesTheGroup) {
    const std::string checkpoint = test::data_path("tiny-klein-bf16.safetensors");
    auto single_backend = make_backend({});
    Flux2Transformer single = Flux2Transformer::load(checkpoint, *single_backend);
    auto backend = make_backend({});
    Flux2Transformer rank0 = Flux2Transformer::load(checkpoint, *backend);
    start_rank_group(
        rank0, 4, Parallelism::ulysses, [](int) { return BackendOptions{}; },
        [&](Backend& be) { return Flux2Transformer::load(checkpoint, be); });
    auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
    for (int i = 0; i < 3; ++i) {
        const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case" + std::to_string(i) + ".", false);
        EXPECT_LE(test::rel_error(rank0.forward(in).to_vector(), single.forward(in).to_vector()), 1e-6) << i;
    }
}

// Ulysses x TP: 4 ranks as 2 rows of 2 tensor-parallel ranks (each holding half of every block), Ulysses across the
// rows, each rank attending over 1 of the 4 heads; bf16 and NVFP4 weights, against one device.
TEST(UlyssesRankGroup, UlyssesTimesTensorParallelMatchesOneDevice) {
    for (const std::string name : {"tiny-klein-bf16.safetensors", "tiny-klein-nvfp4.safetensors"}) {
        const std::string checkpoint = test::data_path(name);
        auto single_backend = make_backend({});
        Flux2Transformer single = Flux2Transformer::load(checkpoint, *single_backend);
        auto backend = make_backend({});
        Flux2Transformer rank0 = Flux2Transformer::load(checkpoint, *backend);
        start_rank_group(
            rank0, 4, Parallelism::ulysses_tp, [](int) { return BackendOptions{}; },
            [&](Backend& be) { return Flux2Transformer::load(checkpoint, be); }, 2);
        auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
        for (int i = 0; i < 3; ++i) {
            const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case" + std::to_string(i) + ".", false);
            EXPECT_LE(test::rel_error(rank0.forward(in).to_vector(), single.forward(in).to_vector()), 1e-6)
                << name << " case " << i;
        }
    }
    auto backend = make_backend({});
    Flux2Transformer rank0 = Flux2Transformer::load(test::data_path("tiny-klein-bf16.safetensors"), *backend);
    test::expect_error(
        [&] {
            start_rank_group(
                rank0, 4, Parallelism::ulysses_tp, [](int) { return BackendOptions{}; },
                [](Backend&) -> Flux2Transformer { fail("not reached"); }, 4);
        },
        {"lays 4 GPUs out in rows of 4", "leave at least 2 rows"});
}

// Adapters set on rank 0 reach every rank, set after the group started or before (then passed on at the start),
// and leave them all when detached; CFG parallelism's second device likewise; tensor parallelism's ranks each with
// their part of every branch.
TEST(UlyssesRankGroup, LorasReachEveryRank) {
    const std::string checkpoint = test::data_path("tiny-klein-bf16.safetensors");
    auto load = [&](Backend& be) { return Flux2Transformer::load(checkpoint, be); };
    auto single_backend = make_backend({});
    Flux2Transformer single = load(*single_backend);
    const std::vector<ActiveLora> active = {
        {"synthetic", std::make_shared<const LoraAdapter>(synthetic_lora(single.config(), 4, 3)), 0.8f}};
    auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
    const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case0.", false);
    const std::vector<float> plain = single.forward(in).to_vector();
    single.set_loras(active);
    const std::vector<float> styled = single.forward(in).to_vector();
    ASSERT_GT(test::rel_error(styled, plain), 1e-3);  // the adapter changes the output

    auto after_backend = make_backend({}), before_backend = make_backend({});
    Flux2Transformer after = load(*after_backend), before = load(*before_backend);
    start_rank_group(
        after, 2, Parallelism::ulysses, [](int) { return BackendOptions{}; }, load);
    after.set_loras(active);
    before.set_loras(active);
    start_rank_group(
        before, 4, Parallelism::ulysses, [](int) { return BackendOptions{}; }, load);
    EXPECT_LE(test::rel_error(after.forward(in).to_vector(), styled), 1e-6);
    EXPECT_LE(test::rel_error(before.forward(in).to_vector(), styled), 1e-6);
    before.set_loras({});
    EXPECT_LE(test::rel_error(before.forward(in).to_vector(), plain), 1e-6);

    auto cfg_backend = make_backend({});
    Flux2Transformer cfg = load(*cfg_backend);
    start_rank_group(
        cfg, 2, Parallelism::cfg, [](int) { return BackendOptions{}; }, load);
    cfg.set_loras(active);
    const auto [cond, uncond] = cfg.forward_guided(in, in);
    EXPECT_EQ(cond.to_vector(), styled);
    EXPECT_EQ(uncond.to_vector(), styled);  // the second device's forward carries the adapter too

    // Tensor parallelism cuts each branch as its layer: set after the split (2 ranks) and before it (4 ranks, and
    // Ulysses x TP on 2 x 2), then detached.
    auto tp_backend = make_backend({});
    Flux2Transformer tp = load(*tp_backend);
    start_rank_group(
        tp, 2, Parallelism::tensor, [](int) { return BackendOptions{}; }, load);
    tp.set_loras(active);
    EXPECT_LE(test::rel_error(tp.forward(in).to_vector(), styled), 1e-6);
    tp.set_loras({});
    EXPECT_LE(test::rel_error(tp.forward(in).to_vector(), plain), 1e-6);
    for (const Parallelism mode : {Parallelism::tensor, Parallelism::ulysses_tp}) {
        auto early_backend = make_backend({});
        Flux2Transformer early = load(*early_backend);
        early.set_loras(active);
        start_rank_group(
            early, 4, mode, [](int) { return BackendOptions{}; }, load, 2);
        EXPECT_LE(test::rel_error(early.forward(in).to_vector(), styled), 1e-6)
            << (mode == Parallelism::tensor ? "tp" : "ulysses x tp");
    }
}

TEST(UlyssesRankGroup, ReportsARankThatFailsToLoad) {
    const std::string checkpoint = test::data_path("tiny-klein-bf16.safetensors");
    auto backend = make_backend({});
    Flux2Transformer rank0 = Flux2Transformer::load(checkpoint, *backend);
    test::expect_error(
        [&] {
            start_rank_group(
                rank0, 2, Parallelism::ulysses, [](int) { return BackendOptions{}; },
                [](Backend&) -> Flux2Transformer { fail("rank 1 cannot read its weights"); });
        },
        {"rank 1 cannot read its weights"});
    test::expect_error(
        [&] {
            start_rank_group(
                rank0, 3, Parallelism::ulysses, [](int) { return BackendOptions{}; },
                [&](Backend& be) { return Flux2Transformer::load(checkpoint, be); });
        },
        {"3 GPUs do not divide this model's 4 heads"});
}

// A rank that fails mid-step (here rank 1 runs another model, which refuses rank 0's inputs before its first
// exchange) must not leave the others waiting in that exchange forever: the group is aborted, rank 0's forward fails
// naming rank 1's error, every later forward fails at once, and leaving the group does not wait either.
TEST(UlyssesRankGroup, ARankThatFailsMidStepAbortsTheGroup) {
    const std::string klein = test::data_path("tiny-klein-bf16.safetensors");
    const std::string dev = test::data_path("tiny-dev-bf16.safetensors");
    auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
    const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case0.", false);
    for (const Parallelism mode : {Parallelism::ulysses, Parallelism::tensor}) {
        auto backend = make_backend({});
        Flux2Transformer rank0 = Flux2Transformer::load(klein, *backend);
        start_rank_group(
            rank0, 2, mode, [](int) { return BackendOptions{}; },
            [&](Backend& be) { return Flux2Transformer::load(dev, be); });
        test::expect_error([&] { rank0.forward(in); }, {"the group was aborted (rank 1 failed: "});
        test::expect_error([&] { rank0.forward(in); }, {"the group was aborted"});
    }  // each rank0 leaves its aborted group here, without waiting
}

TEST(UlyssesSequenceParallel, RefusesRanksThatDoNotDivideTheHeads) {
    auto backend = make_backend({});
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-bf16.safetensors"), *backend);
    FakeCommunicatorGroup group(3);
    test::expect_error([&] { model.set_sequence_parallel(group.rank(0)); },
                       {"3 GPUs do not divide this model's 4 heads"});
}

TEST(UlyssesSequenceParallel, RefusesFewerTokensThanRanks) {
    auto backend = make_backend({});
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-bf16.safetensors"), *backend);
    FakeCommunicatorGroup group(4);
    model.set_sequence_parallel(group.rank(0));
    auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
    Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case0.", false);
    in.encoder_hidden_states = Tensor::zeros({1, 3, in.encoder_hidden_states.dim(2)});
    in.txt_ids = Tensor::zeros({3, 4});
    test::expect_error([&] { model.forward(in); }, {"4 GPUs need at least 4 of each", "got 3 text and 16 image"});
}

TEST(UlyssesSequenceParallel, ShardsSplitEvenlyWithTheRemainderFirst) {
    EXPECT_EQ(shard_of(15, 4, 0).begin, 0);
    EXPECT_EQ(shard_of(15, 4, 0).count, 4);
    EXPECT_EQ(shard_of(15, 4, 2).begin, 8);
    EXPECT_EQ(shard_of(15, 4, 3).begin, 12);
    EXPECT_EQ(shard_of(15, 4, 3).count, 3);
    EXPECT_EQ(shard_of(6, 4, 1).count, 2);
    EXPECT_EQ(shard_of(6, 4, 2).count, 1);
}

}  // namespace
}  // namespace flux2
