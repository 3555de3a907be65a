// The FLUX.2 transformer on the CUDA backend against the diffusers goldens of the tiny models
// (/work/shared/golden/README.md): BF16 path within 1e-2, FP8 path within 3e-2 (relative L2).
#include "cuda_test_util.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2::test {
namespace {

struct GpuGoldenCase {
    std::string model;       // "dev" / "klein"
    std::string checkpoint;  // under tests/data
    std::string golden;      // golden file under tests/data holding out_<key> (inputs: tiny-<model>-golden)
    std::string key;         // output key suffix: out_<key>
    std::string precision;   // CUDA linear path
    std::string path;        // a linear path that must show in path_summary()
    double tolerance;
    std::string attention = "bf16";  // BackendOptions::attention
};

std::ostream& operator<<(std::ostream& os, const GpuGoldenCase& c) {
    return os << c.checkpoint << " (" << c.precision << ", attention " << c.attention << ") vs " << c.key;
}

class CudaTransformerGolden : public ::testing::TestWithParam<GpuGoldenCase> {};

TEST_P(CudaTransformerGolden, MatchesDiffusers) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible: runs on the GPU machine";
    const GpuGoldenCase& c = GetParam();
    BackendOptions options;
    options.device = "cuda";
    options.precision = c.precision;
    options.attention = c.attention;
    auto backend = make_cuda_backend(options);
    if (c.attention == "fp8" && !static_cast<CudaBackend*>(backend.get())->fp8_attention())
        GTEST_SKIP() << "FP8 attention needs a Hopper or newer GPU";
    Flux2Transformer model = Flux2Transformer::load(data_path(c.checkpoint), *backend);
    auto inputs = SafetensorsFile::open(data_path("tiny-" + c.model + "-golden.safetensors"));
    auto golden = SafetensorsFile::open(data_path(c.golden));
    for (int i = 0; i < 3; ++i) {
        const std::string prefix = "case" + std::to_string(i) + ".";
        Flux2Inputs in = golden_transformer_inputs(*inputs, prefix, c.model == "dev");
        const TensorInfo* ref = golden->find(prefix + "out_" + c.key);
        ASSERT_NE(ref, nullptr) << prefix << "out_" << c.key;
        Tensor out = model.forward(in);
        ASSERT_EQ(out.shape(), ref->shape);
        std::vector<float> got = out.to_vector();
        ASSERT_TRUE(all_finite(got));
        const double err = rel_error(got, read_f32(*ref));
        EXPECT_LE(err, c.tolerance) << c << " " << prefix;
        std::printf("%s %s: rel error %.5f\n", c.checkpoint.c_str(), prefix.c_str(), err);
    }
    EXPECT_NE(backend->path_summary().find(c.path), std::string::npos) << backend->path_summary();
    EXPECT_NE(backend->path_summary().find("attention->" + c.attention), std::string::npos) << backend->path_summary();
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// A replayed step (CUDA graph recorded at the first call of a shape) computes exactly what running the ops one by
// one computes, for new inputs of the same shape (refilled) and for inputs of another shape (recorded anew).
TEST(CudaTransformerReplay, ReplayedStepsEqualStepsRunOpByOp) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible: runs on the GPU machine";
    auto make = [](bool graphs) {
        BackendOptions options;
        options.device = "cuda";
        options.precision = "fp8";
        options.cuda_graphs = graphs;
        return make_cuda_backend(options);
    };
    auto replaying = make(true), eager = make(false);
    ASSERT_TRUE(replaying->can_record());
    ASSERT_FALSE(eager->can_record());
    Flux2Transformer a = Flux2Transformer::load(data_path("tiny-klein-nvfp4-mixed.safetensors"), *replaying);
    Flux2Transformer b = Flux2Transformer::load(data_path("tiny-klein-nvfp4-mixed.safetensors"), *eager);
    auto inputs = SafetensorsFile::open(data_path("tiny-klein-golden.safetensors"));
    std::vector<Flux2Inputs> cases;
    for (int i = 0; i < 3; ++i)
        cases.push_back(golden_transformer_inputs(*inputs, "case" + std::to_string(i) + ".", false));
    // Case 0 twice (recorded, then replayed), then the others; a timestep change alone must reach the replay too.
    Flux2Inputs retimed = cases[0];
    retimed.timestep[0] = retimed.timestep[0] * 0.5f + 0.1f;
    for (const Flux2Inputs* in : {&cases[0], &cases[0], &retimed, &cases[1], &cases[2], &cases[1]}) {
        std::vector<float> got = a.forward(*in).to_vector(), want = b.forward(*in).to_vector();
        ASSERT_TRUE(all_finite(got));
        EXPECT_EQ(got, want);
    }
    std::vector<float> first = a.forward(cases[0]).to_vector(), moved = a.forward(retimed).to_vector();
    EXPECT_NE(first, moved) << "the replay ignored the new timestep";
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// Latents kept on the device (Backend::upload_state, as the pipeline keeps them) give the host inputs' velocity, on
// the device and owned by the caller: a later step (same replay, other inputs) leaves an earlier result alone.
TEST(CudaTransformerReplay, StateOnTheDeviceGivesTheHostInputsVelocity) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible: runs on the GPU machine";
    BackendOptions options;
    options.device = "cuda";
    options.precision = "fp8";
    auto be = make_cuda_backend(options);
    Flux2Transformer model = Flux2Transformer::load(data_path("tiny-klein-nvfp4-mixed.safetensors"), *be);
    auto inputs = SafetensorsFile::open(data_path("tiny-klein-golden.safetensors"));
    const Flux2Inputs host = golden_transformer_inputs(*inputs, "case0.", false);
    Flux2Inputs moved = host;
    moved.timestep[0] = moved.timestep[0] * 0.5f + 0.1f;
    const std::vector<float> want = model.forward(host).to_vector(), want_moved = model.forward(moved).to_vector();
    Flux2Inputs on_device = host, moved_on_device = moved;
    on_device.hidden_states = be->upload_state(host.hidden_states);
    moved_on_device.hidden_states = be->upload_state(moved.hidden_states);
    for (int repeat = 0; repeat < 2; ++repeat) {  // the replay both times
        const Tensor v = model.forward(on_device);
        const Tensor v_moved = model.forward(moved_on_device);
        ASSERT_NE(v.device(), Device::cpu);
        EXPECT_EQ(be->download(v).to_vector(), want) << "repeat " << repeat;
        EXPECT_EQ(be->download(v_moved).to_vector(), want_moved) << "repeat " << repeat;
    }
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

TEST(CudaTransformerReplay, CpuBackendRefusesRecording) {
    BackendOptions options;
    auto cpu = make_backend(options);
    EXPECT_FALSE(cpu->can_record());
    EXPECT_THROW(cpu->begin_recording(), Error);
    EXPECT_THROW(cpu->start_profile(), Error);
}

std::vector<GpuGoldenCase> gpu_cases() {
    std::vector<GpuGoldenCase> cases;
    for (std::string m : {"dev", "klein"}) {
        const std::string t = "tiny-" + m, g = t + "-golden.safetensors", f = t + "-formats-golden.safetensors";
        cases.push_back({m, t + "-bf16.safetensors", g, "bf16weights", "bf16", "bf16->bf16", 1e-2});
        cases.push_back({m, t + "-nvfp4.safetensors", g, "nvfp4_w4a16", "bf16", "nvfp4->bf16", 1e-2});
        cases.push_back({m, t + "-nvfp4-mixed.safetensors", g, "nvfp4-mixed_w4a16", "bf16", "nvfp4->bf16", 1e-2});
        cases.push_back({m, t + "-fp8-comfy.safetensors", f, "fp8_w8a16", "bf16", "fp8->bf16", 1e-2});
        cases.push_back({m, t + "-nvfp4.safetensors", g, "nvfp4_w4a16", "fp8", "nvfp4->fp8", 3e-2});
        cases.push_back({m, t + "-nvfp4-mixed.safetensors", g, "nvfp4-mixed_w4a16", "fp8", "nvfp4->fp8", 3e-2});
        cases.push_back({m, t + "-fp8-comfy.safetensors", f, "fp8_w8a16", "fp8", "fp8->fp8", 3e-2});
        // FP8 attention on top of the FP8 linears (auto's choice on Hopper): the step bound of docs/CUDA.md.
        cases.push_back({m, t + "-nvfp4-mixed.safetensors", g, "nvfp4-mixed_w4a16", "fp8", "nvfp4->fp8", 5e-2, "fp8"});
        cases.push_back({m, t + "-fp8-comfy.safetensors", f, "fp8_w8a16", "fp8", "fp8->fp8", 5e-2, "fp8"});
        cases.push_back({m, t + "-bf16.safetensors", g, "bf16weights", "bf16", "bf16->bf16", 5e-2, "fp8"});
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(TinyModels, CudaTransformerGolden, ::testing::ValuesIn(gpu_cases()),
                         [](const ::testing::TestParamInfo<GpuGoldenCase>& info) {
                             std::string n = info.param.checkpoint + "_" + info.param.precision;
                             if (info.param.attention != "bf16") n += "_attn_" + info.param.attention;
                             for (char& ch : n)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });

}  // namespace
}  // namespace flux2::test
