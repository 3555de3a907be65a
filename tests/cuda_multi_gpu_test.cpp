// Several GPUs for one image (flux2_rank_group.h over NCCL): the tiny transformers on two CUDA ranks, Ulysses,
// tensor and CFG parallelism, against one GPU on every golden case, each shape twice (the second call replays the
// recorded step, NCCL calls included). Skipped unless two GPUs are visible (scripts/device-test.sh on an
// nvidia-h200-x2 machine).
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "cuda_test_util.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_rank_group.h"
#include "models/flux2/flux2_transformer.h"
#include "test_util.h"
#ifdef FLUX2_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace flux2 {
namespace {

struct MultiGpuCase {
    std::string model, checkpoint, precision;
    Parallelism mode;
    // Against one GPU on the same path: the sharded sums add in another order, and each device times its own GEMM
    // algorithms (gemm_cublaslt.cpp), which may round differently.
    double tolerance;
};

std::string mode_name(Parallelism m) {
    return m == Parallelism::ulysses ? "ulysses" : m == Parallelism::tensor ? "tp" : "cfg";
}

class CudaMultiGpu : public ::testing::TestWithParam<MultiGpuCase> {};

TEST_P(CudaMultiGpu, MatchesOneGpu) {
#ifdef FLUX2_HAVE_CUDA
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices < 2)
        GTEST_SKIP() << "needs two CUDA GPUs (found " << devices << "): runs on the two-GPU machine";
    const MultiGpuCase& c = GetParam();
    auto options_of = [&](int rank) {
        BackendOptions o;
        o.device = "cuda:" + std::to_string(rank);
        o.precision = c.precision;
        // BF16 attention: FP8 attention scales each rank's heads by their own amax under Ulysses, which is
        // another rounding than one GPU's; this test checks the sharding at the linear paths' bounds.
        o.attention = "bf16";
        return o;
    };
    const std::string path = test::data_path(c.checkpoint);
    auto single_backend = make_backend(options_of(0));
    Flux2Transformer single = Flux2Transformer::load(path, *single_backend);
    auto rank0_backend = make_backend(options_of(0));
    Flux2Transformer rank0 = Flux2Transformer::load(path, *rank0_backend);
    start_rank_group(rank0, 2, c.mode, options_of, [&](Backend& be) { return Flux2Transformer::load(path, be); });

    auto inputs = SafetensorsFile::open(test::data_path("tiny-" + c.model + "-golden.safetensors"));
    for (int i = 0; i < 3; ++i) {
        const std::string prefix = "case" + std::to_string(i) + ".";
        const Flux2Inputs in = test::golden_transformer_inputs(*inputs, prefix, c.model == "dev");
        Flux2Inputs other = in;  // a second conditioning, as a negative prompt's
        Tensor context = in.encoder_hidden_states.clone();
        for (int64_t k = 0; k < context.numel(); ++k) context.f32()[k] *= -0.5f;
        other.encoder_hidden_states = context;
        const std::vector<float> want = single.forward(in).to_vector(), want_other = single.forward(other).to_vector();
        for (int rep = 0; rep < 2; ++rep) {
            if (c.mode == Parallelism::cfg) {
                auto [got, got_other] = rank0.forward_guided(in, other);
                EXPECT_LE(test::rel_error(got.to_vector(), want), c.tolerance) << prefix << "rep " << rep;
                EXPECT_LE(test::rel_error(got_other.to_vector(), want_other), c.tolerance) << prefix << "rep " << rep;
            } else {
                std::vector<float> got = rank0.forward(in).to_vector();
                ASSERT_TRUE(test::all_finite(got));
                EXPECT_LE(test::rel_error(got, want), c.tolerance) << prefix << "rep " << rep;
            }
        }
    }
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

INSTANTIATE_TEST_SUITE_P(
    TinyModels, CudaMultiGpu,
    ::testing::Values(MultiGpuCase{"dev", "tiny-dev-bf16.safetensors", "bf16", Parallelism::ulysses, 1e-2},
                      MultiGpuCase{"klein", "tiny-klein-nvfp4.safetensors", "fp8", Parallelism::ulysses, 2e-2},
                      MultiGpuCase{"dev", "tiny-dev-bf16.safetensors", "bf16", Parallelism::tensor, 1e-2},
                      MultiGpuCase{"klein", "tiny-klein-nvfp4.safetensors", "fp8", Parallelism::tensor, 2e-2},
                      MultiGpuCase{"klein", "tiny-klein-nvfp4.safetensors", "fp8", Parallelism::cfg, 2e-2}),
    [](const ::testing::TestParamInfo<MultiGpuCase>& info) {
        return info.param.model + "_" + info.param.precision + "_" + mode_name(info.param.mode);
    });

}  // namespace
}  // namespace flux2
