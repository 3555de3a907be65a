// Tensor parallelism (Flux2Transformer::set_tensor_parallel) on the CPU: N ranks as N threads, each with its own
// CPU backend holding 1/N of every block's heads and MLP, joined by the fake communicator, against the
// single-device forward on every golden case of the tiny models (bf16 and NVFP4 weights).
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "parallel_test_util.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

struct TpCase {
    std::string model;       // "dev" (2 heads) / "klein" (4 heads)
    std::string checkpoint;  // under tests/data
    int ranks;
};

std::ostream& operator<<(std::ostream& os, const TpCase& c) { return os << c.checkpoint << " x" << c.ranks; }

class TensorParallel : public ::testing::TestWithParam<TpCase> {};

TEST_P(TensorParallel, MatchesOneDevice) {
    const TpCase& c = GetParam();
    std::ostringstream label;
    label << c;
    test::expect_ranks_match_one_device(
        c.model, c.checkpoint, c.ranks,
        [](Flux2Transformer& m, std::shared_ptr<Communicator> comm) { m.set_tensor_parallel(std::move(comm)); },
        label.str());
}

INSTANTIATE_TEST_SUITE_P(TinyModels, TensorParallel,
                         ::testing::Values(TpCase{"dev", "tiny-dev-bf16.safetensors", 2},
                                           TpCase{"klein", "tiny-klein-bf16.safetensors", 2},
                                           TpCase{"klein", "tiny-klein-bf16.safetensors", 4},
                                           TpCase{"dev", "tiny-dev-nvfp4.safetensors", 2},
                                           TpCase{"klein", "tiny-klein-nvfp4.safetensors", 4}),
                         [](const ::testing::TestParamInfo<TpCase>& info) {
                             std::string n = info.param.checkpoint + "_x" + std::to_string(info.param.ranks);
                             for (char& ch : n)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });

TEST(TensorParallelRefusals, RanksThatDoNotDivideTheHeads) {
    auto backend = make_backend({});
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-bf16.safetensors"), *backend);
    FakeCommunicatorGroup group(3);
    test::expect_error([&] { model.set_tensor_parallel(group.rank(0)); },
                       {"3 GPUs do not divide this model's 4 heads"});
}

}  // namespace
}  // namespace flux2
