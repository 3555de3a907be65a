// --offload model on the GPU: giving the device copies of the weights back (and the recorded steps with them) and
// preparing them again at the next use changes nothing, on the fp8 path with NVFP4 weights resident as fp8 or in
// 4 bits, for the transformer (replayed steps included) and the text encoder.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "cuda_test_util.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/text_encoder/text_encoder.h"

namespace flux2 {
namespace {

TEST(CudaOffload, ReleasedWeightsComeBackTheSame) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    for (const std::string residency : {"", "fp4"}) {
        BackendOptions options;
        options.device = "cuda";
        options.precision = "fp8";
        options.residency = residency;
        auto backend = make_backend(options);
        Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-nvfp4.safetensors"), *backend);
        auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
        const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case0.", false);
        const std::vector<float> first = model.forward(in).to_vector();
        const std::vector<float> replayed = model.forward(in).to_vector();
        const int64_t held = backend->memory_in_use_bytes();
        EXPECT_GT(model.release_device_weights(), 0);
        EXPECT_LT(backend->memory_in_use_bytes(), held) << "residency '" << residency << "'";
        EXPECT_EQ(model.forward(in).to_vector(), first) << "residency '" << residency << "'";
        EXPECT_EQ(model.forward(in).to_vector(), replayed) << "residency '" << residency << "'";

        TextEncoder te = TextEncoder::load(test::data_path("tiny-qwen3"), {1, 2, 3}, *backend);
        auto g = SafetensorsFile::open(test::data_path("text-encoder-golden.safetensors"));
        const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
        const std::vector<float> embeds = te.encode(tokens).to_vector();
        EXPECT_GT(te.release_device_weights(), 0);
        EXPECT_EQ(te.encode(tokens).to_vector(), embeds);
    }
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

}  // namespace
}  // namespace flux2
