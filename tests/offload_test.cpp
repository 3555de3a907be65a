// --offload (pipeline/offload.h): auto's choice from the resident estimate, the estimate at real sizes, and that
// giving the device copies back changes no pixel: the engine's second request (weights prepared again) and
// `generate` both match --offload none exactly.
#include "pipeline/offload.h"

#include <gtest/gtest.h>

#include "cli_runner.h"
#include "io/image.h"
#include "models/flux2/flux2_config.h"
#include "models/text_encoder/decoder_config.h"
#include "pipeline/flux2_engine.h"

namespace flux2 {
namespace {

using test::Cli;
using test::contains;
using test::RunResult;

TEST(Offload, AutoOffloadsWhenTheWeightsWouldTakeMostOfTheDevice) {
    const OffloadChoice fits = choose_offload("auto", int64_t{30} << 30, int64_t{141} << 30);
    EXPECT_EQ(fits.mode, Offload::none);
    EXPECT_TRUE(contains(fits.reason, "fit the device's")) << fits.reason;
    const OffloadChoice tight = choose_offload("auto", int64_t{30} << 30, int64_t{32} << 30);
    EXPECT_EQ(tight.mode, Offload::model);
    EXPECT_TRUE(contains(tight.reason, "would take more than 80%")) << tight.reason;
    EXPECT_EQ(choose_offload("none", int64_t{30} << 30, int64_t{1} << 30).mode, Offload::none);
    EXPECT_EQ(choose_offload("model", 1, int64_t{141} << 30).mode, Offload::model);
    EXPECT_THROW(choose_offload("layers", 1, 1), Error);
}

// Dev's 32B transformer and Mistral-Small's 24B (22B in the linears) per path.
TEST(Offload, ResidentEstimateAtRealSize) {
    const Flux2Config dev = Flux2Config::preset("dev");
    const DecoderConfig mistral = DecoderConfig::preset("mistral-small-3");
    BackendOptions fp8;
    fp8.precision = "fp8";
    const double dit = resident_weight_bytes(dev, nullptr, fp8, WeightPrecision::as_stored, true) / 1e9;
    EXPECT_GT(dit, 30.0);
    EXPECT_LT(dit, 33.0);
    const double both = resident_weight_bytes(dev, &mistral, fp8, WeightPrecision::as_stored, true) / 1e9;
    EXPECT_GT(both - dit, 42.0);  // bf16 text encoder, 2 bytes a weight
    EXPECT_LT(both - dit, 48.0);
    BackendOptions fp4 = fp8;
    fp4.residency = "fp4";
    const double small = resident_weight_bytes(dev, &mistral, fp4, WeightPrecision::fp4, true) / 1e9;
    EXPECT_NEAR(small, 0.5625 * (both - dit) / 2.0 + 0.5625 * dit, 0.01 * small);
    EXPECT_NEAR(resident_weight_bytes(dev, nullptr, fp8, WeightPrecision::as_stored, false) / 1e9, 4.0 * dit,
                0.01 * dit);
}

TEST_F(Cli, OffloadModelChangesNoPixel) {
    std::vector<Image> images[2];
    for (const bool offload : {false, true}) {
        EngineOptions options;
        options.components.model_path = demo_dir();
        options.backend.device = "cpu";
        options.offload = offload ? "model" : "none";
        const auto engine = Flux2Engine::load(options);
        EXPECT_EQ(engine->offload(), offload ? Offload::model : Offload::none);
        EngineRequest request;
        request.prompt = "a red circle";
        request.width = request.height = 32;
        request.num_steps = 2;
        // The second request finds the device copies gone (offload) and prepares them again.
        for (int i = 0; i < 2; ++i) images[offload].push_back(engine->generate(request).images.at(0));
    }
    EXPECT_EQ(images[0][0].rgb, images[0][1].rgb);
    EXPECT_EQ(images[1][0].rgb, images[0][0].rgb);
    EXPECT_EQ(images[1][1].rgb, images[0][0].rgb);

    auto generate = [&](const std::string& offload) {
        return flux2({"generate", "--prompt", "a red circle", "--width", "32", "--height", "32",
                      "--num-inference-steps", "2", "--device", "cpu", "--offload", offload, "--output-path",
                      file(offload + ".png"), "--log-level", "debug"});
    };
    const RunResult none = generate("none"), model = generate("model");
    ASSERT_EQ(none.exit_code, 0) << none;
    ASSERT_EQ(model.exit_code, 0) << model;
    EXPECT_TRUE(contains(model.err, "offload: model (--offload model)")) << model.err;
    EXPECT_TRUE(contains(model.err, "offload: transformer weights released (33 linears)")) << model.err;
    EXPECT_FALSE(contains(none.err, "weights released")) << none.err;
    EXPECT_EQ(read_image(file("none.png")).rgb, read_image(file("model.png")).rgb);
    const RunResult auto_run = generate("auto");
    ASSERT_EQ(auto_run.exit_code, 0) << auto_run;
    EXPECT_TRUE(contains(auto_run.err, "offload: none (auto: the resident weights")) << auto_run.err;

    const RunResult gpus = flux2({"generate", "--prompt", "x", "--width", "32", "--height", "32", "--device", "cpu",
                                  "--gpus", "2", "--offload", "model", "--output-path", file("x.png")});
    EXPECT_NE(gpus.exit_code, 0);
    EXPECT_TRUE(contains(gpus.err, "--offload model is for one device, not --gpus 2")) << gpus.err;
}

}  // namespace
}  // namespace flux2
