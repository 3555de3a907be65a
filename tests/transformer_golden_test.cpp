// The CPU transformer against diffusers on every checkpoint layout and every golden case
// (/work/shared/golden/README.md): bf16 and W4A16 within 1e-5, emulated W4A4 within 2e-3.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "golden_data.h"
#include "test_util.h"

namespace flux2 {
namespace {

struct GoldenCase {
    std::string model;       // "dev" / "klein"
    std::string checkpoint;  // file or folder under tests/data
    std::string golden;      // golden file under tests/data
    std::string key;         // output key suffix: out_<key>
    Nvfp4Activations activations;
    double tolerance;
};

std::ostream& operator<<(std::ostream& os, const GoldenCase& c) {
    return os << c.checkpoint << " vs " << c.key;
}

class TransformerGolden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(TransformerGolden, MatchesDiffusers) {
    const GoldenCase& c = GetParam();
    BackendOptions options;
    options.nvfp4_activations = c.activations;
    auto backend = make_backend(options);
    Flux2Transformer model = Flux2Transformer::load(test::data_path(c.checkpoint), *backend);
    auto golden = SafetensorsFile::open(test::data_path(c.golden));
    // The case inputs live in the main golden file only (the formats file holds just the extra outputs).
    auto inputs = SafetensorsFile::open(test::data_path("tiny-" + c.model + "-golden.safetensors"));
    for (int i = 0; i < 3; ++i) {
        const std::string prefix = "case" + std::to_string(i) + ".";
        Flux2Inputs in = test::golden_transformer_inputs(*inputs, prefix, c.model == "dev");
        const TensorInfo* ref = golden->find(prefix + "out_" + c.key);
        ASSERT_NE(ref, nullptr) << prefix << "out_" << c.key;
        Tensor out = model.forward(in);
        ASSERT_EQ(out.shape(), ref->shape);
        double err = test::rel_error(out.to_vector(), read_f32(*ref));
        EXPECT_LE(err, c.tolerance) << c << " " << prefix;
    }
}

std::vector<GoldenCase> all_cases() {
    std::vector<GoldenCase> cases;
    for (std::string m : {"dev", "klein"}) {
        const std::string t = "tiny-" + m;
        const std::string g = t + "-golden.safetensors";
        const auto a16 = Nvfp4Activations::w4a16, a4 = Nvfp4Activations::w4a4;
        cases.push_back({m, t + "-bf16.safetensors", g, "bf16weights", a16, 1e-5});
        cases.push_back({m, t + "-diffusers", g, "bf16weights", a16, 1e-5});
        cases.push_back({m, t + "-nvfp4.safetensors", g, "nvfp4_w4a16", a16, 1e-5});
        cases.push_back({m, t + "-nvfp4-mixed.safetensors", g, "nvfp4-mixed_w4a16", a16, 1e-5});
        cases.push_back({m, t + "-nvfp4-comfyquant.safetensors", g, "nvfp4_w4a16", a16, 1e-5});
        cases.push_back({m, t + "-nvfp4-modelopt", g, "nvfp4_w4a16", a16, 1e-5});
        cases.push_back({m, t + "-fp8-comfy.safetensors", t + "-formats-golden.safetensors", "fp8_w8a16", a16, 1e-5});
        cases.push_back({m, t + "-nvfp4.safetensors", g, "nvfp4_w4a4", a4, 2e-3});
        cases.push_back({m, t + "-nvfp4-mixed.safetensors", g, "nvfp4-mixed_w4a4", a4, 2e-3});
        cases.push_back({m, t + "-nvfp4-comfyquant.safetensors", g, "nvfp4_w4a4", a4, 2e-3});
        cases.push_back({m, t + "-nvfp4-modelopt", g, "nvfp4_w4a4", a4, 2e-3});
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(AllLayouts, TransformerGolden, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<GoldenCase>& info) {
                             std::string n = info.param.checkpoint + "_" + info.param.key;
                             for (char& ch : n)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });

}  // namespace
}  // namespace flux2
