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
};

std::ostream& operator<<(std::ostream& os, const GpuGoldenCase& c) {
    return os << c.checkpoint << " (" << c.precision << ") vs " << c.key;
}

class CudaTransformerGolden : public ::testing::TestWithParam<GpuGoldenCase> {};

TEST_P(CudaTransformerGolden, MatchesDiffusers) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible: runs on the GPU machine";
    const GpuGoldenCase& c = GetParam();
    BackendOptions options;
    options.device = "cuda";
    options.precision = c.precision;
    auto backend = make_cuda_backend(options);
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
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
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
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(TinyModels, CudaTransformerGolden, ::testing::ValuesIn(gpu_cases()),
                         [](const ::testing::TestParamInfo<GpuGoldenCase>& info) {
                             std::string n = info.param.checkpoint + "_" + info.param.precision;
                             for (char& ch : n)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });

}  // namespace
}  // namespace flux2::test
