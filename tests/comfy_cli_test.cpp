// `flux2 generate` on what users already have: a ComfyUI models/ folder of split files (with the tokenizer from the
// base model), and --vae-tiling (the flag reaches the pipeline, says so, and at a size where tiles would run in
// lockstep the decode is whole, as untiled).
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_runner.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace flux2 {
namespace {

namespace fs = std::filesystem;
using test::Cli;
using test::contains;
using test::data_path;
using test::golden;
using test::RunResult;

TEST_F(Cli, GeneratesFromComfyModelsFolderWithTheBaseModelsTokenizer) {
    const fs::path models = file("ComfyUI/models");
    for (const char* d : {"diffusion_models", "text_encoders", "vae", "loras"}) fs::create_directories(models / d);
    const fs::path dit = models / "diffusion_models" / "flux2_klein_tiny.safetensors";
    fs::create_symlink(data_path("tiny-klein-bf16.safetensors"), dit);
    fs::create_symlink(data_path("tiny-qwen3/model.safetensors"), models / "text_encoders" / "qwen_3_tiny.safetensors");
    // The tiny encoder matches none of the presets a real ComfyUI file is recognized by, so its config rides beside.
    fs::create_symlink(data_path("tiny-qwen3/config.json"), models / "text_encoders" / "config.json");
    fs::create_symlink(data_path("tiny-vae/diffusion_pytorch_model.safetensors"),
                       models / "vae" / "flux2-vae.safetensors");
    fs::create_directories(file("base"));
    fs::create_directory_symlink(data_path("qwen3-tokenizer"), file("base/tokenizer"));

    for (const std::string& model : {models.string(), dit.string()}) {
        RunResult r = flux2({"generate", "--model-path", model, "--base-model-path", file("base"), "--prompt", "a cat",
                             "--text-encoder-out-layers", "1", "2", "3", "--width", "32", "--height", "32",
                             "--num-inference-steps", "1", "--output-path", file("out.png")});
        ASSERT_EQ(r.exit_code, 0) << r;
        EXPECT_TRUE(contains(r.err, "taking missing components from the base model " + file("base"))) << r.err;
        EXPECT_TRUE(contains(r.err, (models / "text_encoders" / "qwen_3_tiny.safetensors").string())) << r.err;
        EXPECT_TRUE(contains(r.err, (models / "vae" / "flux2-vae.safetensors").string())) << r.err;
        ImageText text;
        read_image(file("out.png"), &text);
        EXPECT_EQ(text["model"], dit.string());
        EXPECT_EQ(text["variant"], "klein (distilled)");
    }
}

// --vae-tiling at a size where tiles would run in lockstep (up to 1024²) decodes whole and says why.
TEST_F(Cli, VaeTilingFlagDecodesSmallImagesWhole) {
    auto g = SafetensorsFile::open(data_path("pipeline-golden.safetensors"));
    write_dev_golden_inputs(*g);
    auto run = [&](bool tiled, const std::string& out) {
        std::vector<std::string> args = dev_golden_generate_args();
        args.insert(args.end(), {"--output-path", file(out)});
        if (tiled) args.push_back("--vae-tiling");
        return flux2(args);
    };
    const RunResult plain = run(false, "plain.png"), tiled = run(true, "tiled.png");
    ASSERT_EQ(plain.exit_code, 0) << plain;
    ASSERT_EQ(tiled.exit_code, 0) << tiled;
    EXPECT_FALSE(contains(plain.err, "VAE decode in")) << plain.err;
    EXPECT_TRUE(contains(tiled.err, "VAE decode whole, not tiled: at ")) << tiled.err;
    EXPECT_TRUE(contains(tiled.err, "tiles must share the whole image's GroupNorm statistics")) << tiled.err;
    EXPECT_EQ(read_image(file("plain.png")).rgb, read_image(file("tiled.png")).rgb);

    const RunResult help = flux2({"serve", "--help"});
    EXPECT_TRUE(contains(help.out, "--vae-tiling")) << help;
}

}  // namespace
}  // namespace flux2
