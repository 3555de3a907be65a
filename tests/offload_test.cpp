// --offload (pipeline/offload.h): auto's choice from the resident estimate, the estimate at real sizes, and that
// giving the device copies back changes no pixel: the engine's second request (weights prepared again) and
// `generate` both match --offload none exactly.
#include "pipeline/offload.h"

#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "cli_runner.h"
#include "io/image.h"
#include "models/flux2/flux2_config.h"
#include "models/text_encoder/decoder_config.h"
#include "pipeline/flux2_engine.h"
#include "test_util.h"

namespace flux2 {
namespace {

using test::Cli;
using test::contains;
using test::RunResult;

TEST(Offload, AutoPicksTheLeastOffloadingThatFits) {
    const int64_t gb = int64_t{1} << 30;
    const OffloadChoice fits = choose_offload("auto", 30 * gb, 20 * gb, 141 * gb);
    EXPECT_EQ(fits.mode, Offload::none);
    EXPECT_TRUE(contains(fits.reason, "GB available on the device")) << fits.reason;
    // Both together are too much for 80% of 32 GB, the larger alone (20 GB) is not.
    const OffloadChoice tight = choose_offload("auto", 30 * gb, 20 * gb, 32 * gb);
    EXPECT_EQ(tight.mode, Offload::model);
    EXPECT_TRUE(contains(tight.reason, "would take more than 80%")) << tight.reason;
    const OffloadChoice small = choose_offload("auto", 30 * gb, 27 * gb, 32 * gb);
    EXPECT_EQ(small.mode, Offload::layers);
    EXPECT_TRUE(contains(small.reason, "layers stream from host memory")) << small.reason;
    EXPECT_EQ(choose_offload("none", 30 * gb, 30 * gb, gb).mode, Offload::none);
    EXPECT_EQ(choose_offload("model", 1, 1, 141 * gb).mode, Offload::model);
    EXPECT_EQ(choose_offload("layers", 1, 1, 141 * gb).mode, Offload::layers);
    EXPECT_THROW(choose_offload("blocks", 1, 1, 1), Error);

    // Layers mode keeps whole blocks resident within a budget: the one asked for, 0 by default, and under auto what
    // 80% of the device leaves beside the activations' reserve.
    EXPECT_EQ(small.transformer_stream.resident_budget_bytes, static_cast<int64_t>(0.8 * 32 * gb) - kActivationReserve);
    EXPECT_TRUE(contains(small.reason, "blocks stay resident up to")) << small.reason;
    EXPECT_EQ(choose_offload("layers", 1, 1, 141 * gb).transformer_stream.resident_budget_bytes, 0);
    EXPECT_EQ(choose_offload("layers", 1, 1, 141 * gb, 5 * gb).transformer_stream.resident_budget_bytes, 5 * gb);
    EXPECT_EQ(choose_offload("auto", 30 * gb, 27 * gb, 32 * gb, 3 * gb).transformer_stream.resident_budget_bytes,
              3 * gb);
    // Nothing left over; then none, which leaves the budget unused.
    EXPECT_EQ(choose_offload("auto", 30 * gb, 27 * gb, 8 * gb).transformer_stream.resident_budget_bytes, 0);
    EXPECT_EQ(choose_offload("auto", 30 * gb, 20 * gb, 141 * gb, 3 * gb).transformer_stream.resident_budget_bytes, 0);
    try {
        choose_offload("model", 1, 1, 141 * gb, 3 * gb);
        ADD_FAILURE() << "a budget with --offload model was accepted";
    } catch (const Error& e) {
        EXPECT_TRUE(contains(e.what(), "--resident-budget is for --offload layers")) << e.what();
    }

    // --stream-e4m3 goes with layers mode as the budget does: passed on (and said) there, unused when auto picks
    // another mode, refused with an explicit other one.
    const OffloadChoice e4m3 = choose_offload("layers", 1, 1, 141 * gb, 18 * gb, 8);
    EXPECT_EQ(e4m3.transformer_stream.resident_budget_bytes, 18 * gb);
    EXPECT_EQ(e4m3.transformer_stream.e4m3_groups, 8);
    EXPECT_TRUE(contains(e4m3.reason, "up to 8 streamed blocks as E4M3")) << e4m3.reason;
    EXPECT_EQ(choose_offload("auto", 30 * gb, 27 * gb, 32 * gb, -1, 4).transformer_stream.e4m3_groups, 4);
    EXPECT_EQ(choose_offload("auto", 30 * gb, 20 * gb, 141 * gb, -1, 4).transformer_stream.e4m3_groups, 0);  // none
    EXPECT_EQ(choose_offload("layers", 1, 1, 141 * gb).transformer_stream.e4m3_groups, 0);
    try {
        choose_offload("none", 1, 1, 141 * gb, -1, 8);
        ADD_FAILURE() << "--stream-e4m3 with --offload none was accepted";
    } catch (const Error& e) {
        EXPECT_TRUE(contains(e.what(), "--stream-e4m3 is for --offload layers")) << e.what();
    }
    EXPECT_THROW(choose_offload("layers", 1, 1, 141 * gb, -1, -1), Error);
}

// Dev's 32B transformer and Mistral-Small's 24B (22B in the linears) per path.
// dev at real size: the transformer's linears on the fp8 path, and Mistral's 30 layers that run (of 40) in each
// format its file may hold, on each path.
TEST(Offload, ResidentEstimateAtRealSize) {
    const Flux2Config dev = Flux2Config::preset("dev");
    TextEncoderFootprint mistral;
    mistral.config = DecoderConfig::preset("mistral-small-3");
    mistral.layers_run = 30;
    BackendOptions fp8;
    fp8.precision = "fp8";
    auto te_gb = [&](const TextEncoderFootprint& te, const BackendOptions& b) {
        return (resident_weight_bytes(dev, &te, b, true) - resident_weight_bytes(dev, nullptr, b, true)) / 1e9;
    };
    const double dit = resident_weight_bytes(dev, nullptr, fp8, true) / 1e9;
    EXPECT_GT(dit, 30.0);
    EXPECT_LT(dit, 33.0);
    const double bf16 = te_gb(mistral, fp8);  // a bf16 file: 2 bytes a weight, 16.7B weights in 30 layers
    EXPECT_GT(bf16, 32.0);
    EXPECT_LT(bf16, 34.5);
    TextEncoderFootprint converted = mistral;
    converted.precision = WeightPrecision::fp8;  // --text-encoder-precision fp8
    EXPECT_NEAR(te_gb(converted, fp8), bf16 / 2, 0.01 * bf16);
    TextEncoderFootprint fp8_file = mistral, fp4_file = mistral;
    fp8_file.stored = WeightFormat::fp8;  // ComfyUI's FP8 Mistral, as stored
    fp4_file.stored = WeightFormat::nvfp4;
    EXPECT_NEAR(te_gb(fp8_file, fp8), bf16 / 2, 0.01 * bf16);
    EXPECT_NEAR(te_gb(fp4_file, fp8), bf16 / 2, 0.01 * bf16);  // NVFP4 runs as E4M3 on the fp8 path
    BackendOptions fp4 = fp8, bf16_path;
    fp4.residency = "fp4";
    bf16_path.precision = "bf16";
    EXPECT_NEAR(te_gb(fp4_file, fp4), 0.5625 * bf16 / 2, 0.01 * bf16);
    EXPECT_NEAR(te_gb(fp8_file, bf16_path), bf16, 0.01 * bf16);  // dequantized to BF16
    EXPECT_NEAR(resident_weight_bytes(dev, nullptr, fp8, false) / 1e9, 4.0 * dit, 0.01 * dit);

    // So on a 64 GiB card the engine keeps dev with ComfyUI's FP8 Mistral resident (~48 GB), and with a bf16 one
    // (~65 GB, past 80% of the card) each model only while it runs.
    const int64_t gb = int64_t{1} << 30;
    auto choose = [&](const TextEncoderFootprint& te) {
        const int64_t both = resident_weight_bytes(dev, &te, fp8, true),
                      alone = resident_weight_bytes(dev, nullptr, fp8, true);
        return choose_offload("auto", both, std::max(alone, both - alone), 64 * gb).mode;
    };
    EXPECT_EQ(choose(fp8_file), Offload::none);
    EXPECT_EQ(choose(mistral), Offload::model);

    // From a file: the tiny Mistral's bf16 linears, the hidden layers read.
    const TextEncoderFootprint tiny =
        text_encoder_footprint(test::data_path("tiny-mistral"), {1, 3}, WeightPrecision::as_stored);
    EXPECT_EQ(tiny.stored, WeightFormat::dense);
    EXPECT_EQ(tiny.layers_run, 3);
    EXPECT_EQ(tiny.config.family, DecoderFamily::mistral);
}

// A device shared with another process: auto sizes by what is available, not by the capacity (an H200 with all
// but 24 GB held elsewhere is a 24 GB card to dev's pipeline; sizing by its 141 GB picked none, which ran out of
// memory at the first request).
class SharedDeviceBackend final : public CpuBackend {
public:
    explicit SharedDeviceBackend(int64_t available) : CpuBackend(BackendOptions{}), available_(available) {}
    std::string name() const override { return "shared-device"; }  // not "cpu": the GPU's bytes per weight
    int64_t memory_capacity_bytes() const override { return int64_t{141} << 30; }
    int64_t memory_available_bytes() const override { return available_; }

private:
    int64_t available_;
};

TEST(Offload, AutoSizesByTheMemoryAvailable) {
    const int64_t gb = int64_t{1} << 30;
    const Flux2Config dev = Flux2Config::preset("dev");
    TextEncoderFootprint mistral;
    mistral.config = DecoderConfig::preset("mistral-small-3");
    mistral.layers_run = 30;
    mistral.stored = WeightFormat::nvfp4;
    BackendOptions fp8;
    fp8.precision = "fp8";
    const OffloadChoice whole =
        choose_offload("auto", dev, &mistral, fp8, SharedDeviceBackend(141 * gb), /*sequential=*/false);
    EXPECT_EQ(whole.mode, Offload::none) << whole.reason;
    const OffloadChoice shared =
        choose_offload("auto", dev, &mistral, fp8, SharedDeviceBackend(24 * gb), /*sequential=*/false);
    EXPECT_EQ(shared.mode, Offload::layers) << shared.reason;
    EXPECT_TRUE(contains(shared.reason, "25.7698 GB available on the device")) << shared.reason;
    EXPECT_EQ(shared.transformer_stream.resident_budget_bytes,
              static_cast<int64_t>(0.8 * static_cast<double>(24 * gb)) - kActivationReserve);
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
    const RunResult none = generate("none"), model = generate("model"), layers = generate("layers");
    ASSERT_EQ(none.exit_code, 0) << none;
    ASSERT_EQ(model.exit_code, 0) << model;
    ASSERT_EQ(layers.exit_code, 0) << layers;
    // The CPU computes from host memory: layers mode is accepted and says there is nothing to stream.
    EXPECT_TRUE(contains(layers.err, "offload: layers (--offload layers)")) << layers.err;
    EXPECT_TRUE(contains(layers.err, "the text encoder computes from host memory on this backend")) << layers.err;
    EXPECT_TRUE(contains(layers.err, "the transformer computes from host memory on this backend")) << layers.err;
    EXPECT_TRUE(contains(model.err, "offload: model (--offload model)")) << model.err;
    EXPECT_TRUE(contains(model.err, "offload: transformer weights released (33 linears)")) << model.err;
    EXPECT_FALSE(contains(none.err, "weights released")) << none.err;
    EXPECT_EQ(read_image(file("none.png")).rgb, read_image(file("model.png")).rgb);
    EXPECT_EQ(read_image(file("none.png")).rgb, read_image(file("layers.png")).rgb);
    const RunResult auto_run = generate("auto");
    ASSERT_EQ(auto_run.exit_code, 0) << auto_run;
    EXPECT_TRUE(contains(auto_run.err, "offload: none (auto: the resident weights")) << auto_run.err;

    const RunResult gpus = flux2({"generate", "--prompt", "x", "--width", "32", "--height", "32", "--device", "cpu",
                                  "--gpus", "2", "--offload", "model", "--output-path", file("x.png")});
    EXPECT_NE(gpus.exit_code, 0);
    EXPECT_TRUE(contains(gpus.err, "--offload model is for one device, not --gpus 2")) << gpus.err;
    const RunResult gpus_layers = flux2({"generate", "--prompt", "x", "--width", "32", "--height", "32", "--device",
                                         "cpu", "--gpus", "2", "--offload", "layers", "--output-path", file("x.png")});
    EXPECT_NE(gpus_layers.exit_code, 0);
    EXPECT_TRUE(contains(gpus_layers.err, "--offload layers is for one device, not --gpus 2")) << gpus_layers.err;
    // auto means none with several GPUs: the layer-streaming flags would be dropped, so they are refused.
    const RunResult gpus_e4m3 = flux2({"generate", "--prompt", "x", "--width", "32", "--height", "32", "--device",
                                       "cpu", "--gpus", "2", "--stream-e4m3", "4", "--output-path", file("x.png")});
    EXPECT_NE(gpus_e4m3.exit_code, 0);
    EXPECT_TRUE(contains(gpus_e4m3.err, "--resident-budget and --stream-e4m3 are for --offload layers on one device"))
        << gpus_e4m3.err;
}

// The per-phase peaks of bench --pipeline and the server's responses: after reset_peak_memory the peak restarts
// from what is in use, so a large allocation freed before the reset no longer shows.
TEST(BackendMemory, PeakRestartsFromWhatIsInUse) {
    auto cpu = make_backend(BackendOptions{});
    {
        std::vector<char> big(512 << 20);
        for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i);  // resident, page by page
        EXPECT_GE(cpu->peak_memory_bytes(), int64_t{512} << 20);
    }
    const int64_t before = cpu->peak_memory_bytes();
    cpu->reset_peak_memory();
    const int64_t after = cpu->peak_memory_bytes();
    EXPECT_LT(after, before - (int64_t{256} << 20)) << "the freed 512 MB still counts after the reset";
    EXPECT_GE(after, cpu->memory_in_use_bytes() / 2);
}

}  // namespace
}  // namespace flux2
