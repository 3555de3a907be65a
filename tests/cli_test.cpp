// The `flux2` command line end to end: the built binary runs as a subprocess on the tiny test models and on the
// built-in demo model set; the tests check exit codes, the files written (numerics against the diffusers goldens,
// PNG text chunks) and that error messages say what is wrong and where.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "golden_data.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/tokenizer/chat_template.h"
#include "test_util.h"
#include "tokenizer_test_util.h"

namespace flux2 {
namespace {

namespace fs = std::filesystem;
using test::Cli;
using test::CliForward;
using test::contains;
using test::data_path;
using test::golden;
using test::read_file;
using test::RunResult;

int max_pixel_difference(const Image& a, const Image& b) {
    if (a.width != b.width || a.height != b.height) return 256;
    int worst = 0;
    for (size_t i = 0; i < a.rgb.size(); ++i) worst = std::max(worst, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
    return worst;
}

// round(255 * x) of a golden [1, H, W, 3] image in [0, 1].
Image golden_image(const SafetensorsFile& f, const std::string& key) {
    const Tensor x = golden(f, key);
    Image img = Image::blank(static_cast<int>(x.dim(2)), static_cast<int>(x.dim(1)));
    for (int64_t i = 0; i < x.numel(); ++i) img.rgb[i] = static_cast<uint8_t>(std::lround(255.0f * x.f32()[i]));
    return img;
}

// ---- the demo ----

// Without --model-path, generate runs the built-in demo: here ($FLUX2_DEMO_DIR) the tiny random pipeline.
TEST_F(Cli, DemoGeneratesReproducibleImages) {
    const std::vector<std::string> common = {"generate", "--prompt", "a lighthouse at dusk",  "--width", "64",
                                             "--height", "32",       "--num-inference-steps", "2"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = common;
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    };
    RunResult first = flux2(with({"--seed", "7", "--output-path", file("a.png")}));
    ASSERT_EQ(first.exit_code, 0) << first;
    EXPECT_EQ(first.out, file("a.png") + "\n");
    EXPECT_TRUE(contains(first.err, "using the built-in demo model (" + demo_dir() + ")")) << first.err;

    ImageText text;
    const Image a = read_image(file("a.png"), &text);
    EXPECT_EQ(a.width, 64);
    EXPECT_EQ(a.height, 32);
    EXPECT_EQ(text["prompt"], "a lighthouse at dusk");
    EXPECT_EQ(text["seed"], "7");
    EXPECT_EQ(text["steps"], "2");
    EXPECT_EQ(text["model"], (fs::path(demo_dir()) / "transformer").string());
    EXPECT_EQ(text["variant"], "klein (distilled)");
    EXPECT_EQ(text["software"], "flux2.cpp");

    RunResult again = flux2(with({"--seed", "7", "--output-path", file("b.png")}));
    ASSERT_EQ(again.exit_code, 0) << again;
    EXPECT_EQ(read_file(file("b.png")), read_file(file("a.png")));

    RunResult other = flux2(with({"--seed", "8", "--output-path", file("c.png")}));
    ASSERT_EQ(other.exit_code, 0) << other;
    ImageText other_text;
    const Image c = read_image(file("c.png"), &other_text);
    EXPECT_EQ(other_text["seed"], "8");
    EXPECT_NE(c.rgb, a.rgb);

    // A batch: numbered files, image i made from seed + i (a batched matmul may round differently: +-1).
    RunResult batch = flux2(with({"--seed", "7", "--num-images", "2", "--output-path", file("batch.png")}));
    ASSERT_EQ(batch.exit_code, 0) << batch;
    EXPECT_EQ(batch.out, file("batch_0.png") + "\n" + file("batch_1.png") + "\n");
    for (int i = 0; i < 2; ++i) {
        ImageText batch_text;
        const Image img = read_image(file("batch_" + std::to_string(i) + ".png"), &batch_text);
        EXPECT_EQ(batch_text["seed"], std::to_string(7 + i));
        EXPECT_LE(max_pixel_difference(img, i == 0 ? a : c), 1) << "image " << i;
    }
}

// The real built-in demo: the trained model of assets/demo-model, its NVFP4-mixed transformer file, klein base with
// CFG, 128x128 and a prompt of its scene vocabulary by default (what it draws is scored by CliEval).
TEST_F(Cli, TrainedDemoModelIsTheDefault) {
    trained_demo_ = true;
    RunResult r = flux2({"generate", "--num-inference-steps", "2", "--output-path", file("demo.png")});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.err, "using the built-in demo model")) << r.err;
    EXPECT_TRUE(contains(r.err, "coloured circles, squares and triangles")) << r.err;
    EXPECT_FALSE(contains(r.err, "RANDOM")) << r.err;
    ImageText text;
    const Image img = read_image(file("demo.png"), &text);
    EXPECT_EQ(img.width, 128);
    EXPECT_EQ(img.height, 128);
    EXPECT_TRUE(contains(text["prompt"], "on a yellow background")) << text["prompt"];
    EXPECT_EQ(text["model"],
              (fs::path(FLUX2_ASSETS_DIR) / "demo-model" / "flux2-klein-base-demo-nvfp4-mixed.safetensors").string());
    EXPECT_EQ(text["variant"], "klein (base, CFG)");

    // $FLUX2_ASSETS moved away from the model: the error says where it looked and what to do.
    RunResult missing =
        run_binary({"generate", "--output-path", file("x.png")}, {{"FLUX2_ASSETS", file("nowhere")}}, tmp_);
    EXPECT_EQ(missing.exit_code, 1) << missing;
    EXPECT_TRUE(contains(missing.err, "the built-in demo model is missing")) << missing.err;
    EXPECT_TRUE(contains(missing.err, "--model-path")) << missing.err;
}

TEST_F(Cli, EncodePromptOutputDrivesGenerate) {
    // A generate with the demo; its image is the reference for the --prompt-embeds run.
    const std::vector<std::string> size = {"--width", "32", "--height", "32", "--num-inference-steps", "1"};
    std::vector<std::string> args = {"generate", "--prompt", "a cat", "--output-path", file("prompt.png")};
    args.insert(args.end(), size.begin(), size.end());
    RunResult from_prompt = flux2(args);
    ASSERT_EQ(from_prompt.exit_code, 0) << from_prompt;

    RunResult enc = flux2(
        {"encode-prompt", "--model-path", demo_dir(), "--prompt", "a cat", "--output", file("embeds.safetensors")});
    ASSERT_EQ(enc.exit_code, 0) << enc;
    auto f = SafetensorsFile::open(file("embeds.safetensors"));
    ASSERT_NE(f->find("prompt_embeds"), nullptr);
    EXPECT_EQ(f->find("prompt_embeds")->shape, (Shape{1, 512, 192}));
    ASSERT_NE(f->find("input_ids"), nullptr);
    ASSERT_NE(f->find("attention_mask"), nullptr);
    EXPECT_EQ(f->find("input_ids")->shape, (Shape{1, 512}));
    EXPECT_EQ(f->find("attention_mask")->shape, (Shape{1, 512}));
    EXPECT_EQ(f->find("negative_prompt_embeds"), nullptr);

    // The demo's tokenizer is the real Qwen3 one, templated as klein does.
    std::vector<int32_t> mask;
    const auto ids = encode_prompt_ids(test::qwen3_tokenizer(), TemplateKind::qwen3, "a cat", 512, &mask);
    const std::vector<float> got_ids = read_f32(*f->find("input_ids")), got_mask = read_f32(*f->find("attention_mask"));
    ASSERT_EQ(got_ids.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        ASSERT_EQ(got_ids[i], static_cast<float>(ids[i])) << "input_ids[" << i << "]";
        ASSERT_EQ(got_mask[i], static_cast<float>(mask[i])) << "attention_mask[" << i << "]";
    }

    // A transformer file with an explicit --text-encoder (tokenizer/ beside it): no VAE is needed to encode.
    RunResult explicit_encoder = flux2({"encode-prompt", "--model-path", data_path("tiny-dev-bf16.safetensors"),
                                        "--text-encoder", (fs::path(demo_dir()) / "text_encoder").string(), "--prompt",
                                        "a cat", "--output", file("embeds2.safetensors")});
    ASSERT_EQ(explicit_encoder.exit_code, 0) << explicit_encoder;
    EXPECT_EQ(read_f32(*SafetensorsFile::open(file("embeds2.safetensors"))->find("prompt_embeds")),
              read_f32(*f->find("prompt_embeds")));

    args = {"generate", "--prompt-embeds", file("embeds.safetensors"), "--output-path", file("embeds.png")};
    args.insert(args.end(), size.begin(), size.end());
    RunResult from_embeds = flux2(args);
    ASSERT_EQ(from_embeds.exit_code, 0) << from_embeds;
    ImageText text;
    EXPECT_EQ(read_image(file("embeds.png"), &text).rgb, read_image(file("prompt.png")).rgb);
    EXPECT_EQ(text["prompt"], "a cat");  // from the embeddings file's metadata

    args.insert(args.end(), {"--prompt", "a dog"});
    RunResult both = flux2(args);
    EXPECT_EQ(both.exit_code, 1) << both;
    EXPECT_TRUE(contains(both.err, "not both")) << both.err;
}

// ---- numerics against the diffusers goldens ----

TEST_F(Cli, GenerateDevMatchesDiffusersPipeline) {
    auto g = SafetensorsFile::open(data_path("pipeline-golden.safetensors"));
    write_dev_golden_inputs(*g);

    std::vector<std::string> args = dev_golden_generate_args();
    args.insert(args.end(), {"--guidance-scale", "4", "--save-latents", file("latents.safetensors"), "--output-path",
                             file("dev.png")});
    RunResult r = flux2(args);
    ASSERT_EQ(r.exit_code, 0) << r;

    auto saved = SafetensorsFile::open(file("latents.safetensors"));
    ASSERT_NE(saved->find("latents"), nullptr);
    const Tensor latents = load_f32(*saved->find("latents"));
    const Tensor ref_latents = golden(*g, "dev.steps4.latents_out");
    ASSERT_EQ(latents.shape(), ref_latents.shape());
    EXPECT_LE(test::rel_error(latents.to_vector(), ref_latents.to_vector()), 1e-5);

    ImageText text;
    const Image img = read_image(file("dev.png"), &text);
    EXPECT_LE(max_pixel_difference(img, golden_image(*g, "dev.steps4.image")), 1);
    EXPECT_EQ(text["variant"], "dev");
    EXPECT_EQ(text["guidance"], "4");
    EXPECT_EQ(text["steps"], "4");
}

TEST_F(Cli, GenerateDevEditMatchesDiffusersPipeline) {
    auto g = SafetensorsFile::open(data_path("pipeline-golden.safetensors"));
    write_dev_golden_inputs(*g);
    write_png(file("reference.png"), test::image_from_hwc_bytes(golden(*g, "dev_edit.ref_uint8")));

    RunResult r = flux2({"generate", "--model-path", data_path("tiny-dev-bf16.safetensors"), "--vae-path",
                         data_path("tiny-vae"), "--prompt-embeds", file("embeds.safetensors"), "--initial-noise",
                         file("noise.safetensors"), "--image", file("reference.png"), "--width", "64", "--height", "64",
                         "--num-inference-steps", "4", "--output-path", file("edit.png")});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_LE(max_pixel_difference(read_image(file("edit.png")), golden_image(*g, "dev_edit.steps4.image")), 1);
}

// klein without model_index.json: "klein" + "base" in a path part means the base model (true CFG), a folder that
// merely contains "base" does not. Both variants must match diffusers.
TEST_F(Cli, GenerateKleinVariantsMatchDiffusersPipeline) {
    auto g = SafetensorsFile::open(data_path("pipeline-golden.safetensors"));
    SafetensorsWriter embeds, noise;
    embeds.add_f32("prompt_embeds", golden(*g, "klein.prompt_embeds"));
    embeds.add_f32("negative_prompt_embeds", golden(*g, "klein.negative_prompt_embeds"));
    embeds.write(file("embeds.safetensors"));
    noise.add_f32("latents", golden(*g, "dev.latents_in"));
    noise.write(file("noise.safetensors"));
    fs::create_directories(file("database"));
    fs::create_symlink(data_path("tiny-klein-bf16.safetensors"), file("database/tiny-klein.safetensors"));
    fs::create_symlink(data_path("tiny-klein-bf16.safetensors"), file("tiny-klein-base.safetensors"));

    const std::vector<std::pair<std::string, std::string>> cases = {
        {file("database/tiny-klein.safetensors"), "klein_distilled"},
        {file("tiny-klein-base.safetensors"), "klein_base"}};
    for (const auto& [model, variant] : cases) {
        RunResult r = flux2({"generate", "--model-path", model, "--vae-path", data_path("tiny-vae"), "--prompt-embeds",
                             file("embeds.safetensors"), "--initial-noise", file("noise.safetensors"), "--width", "64",
                             "--height", "64", "--num-inference-steps", "4", "--guidance-scale", "4", "--output-path",
                             file(variant + ".png")});
        ASSERT_EQ(r.exit_code, 0) << r;
        ImageText text;
        const Image img = read_image(file(variant + ".png"), &text);
        EXPECT_EQ(text["variant"], variant == "klein_base" ? "klein (base, CFG)" : "klein (distilled)");
        EXPECT_LE(max_pixel_difference(img, golden_image(*g, variant + ".steps4.image")), 1) << variant;
    }
}

// is_distilled of model_index.json counts only for the pipeline's own transformer: not for a base model's, and not
// once --transformer-weights-path replaces it.
TEST_F(Cli, KleinModeFollowsTheTransformersOwnPipeline) {
    auto g = SafetensorsFile::open(data_path("pipeline-golden.safetensors"));
    SafetensorsWriter embeds;
    embeds.add_f32("prompt_embeds", golden(*g, "klein.prompt_embeds"));
    embeds.add_f32("negative_prompt_embeds", golden(*g, "klein.negative_prompt_embeds"));
    embeds.write(file("embeds.safetensors"));
    auto make_pipeline = [&](const std::string& name, bool distilled) {
        fs::create_directories(file(name));
        fs::create_directory_symlink(data_path("tiny-klein-diffusers"), file(name + "/transformer"));
        fs::create_directory_symlink(data_path("tiny-vae"), file(name + "/vae"));
        std::ofstream(file(name + "/model_index.json"))
            << "{\"is_distilled\": " << (distilled ? "true" : "false") << "}";
    };
    make_pipeline("distilled-pipeline", true);
    make_pipeline("base-pipeline", false);
    fs::create_symlink(data_path("tiny-klein-bf16.safetensors"), file("tiny-klein-base.safetensors"));
    fs::create_symlink(data_path("tiny-klein-bf16.safetensors"), file("tiny-klein.safetensors"));

    auto variant_of = [&](std::vector<std::string> model_args) {
        std::vector<std::string> args = {"generate",
                                         "--prompt-embeds",
                                         file("embeds.safetensors"),
                                         "--width",
                                         "32",
                                         "--height",
                                         "32",
                                         "--num-inference-steps",
                                         "1",
                                         "--output-path",
                                         file("out.png")};
        args.insert(args.end(), model_args.begin(), model_args.end());
        RunResult r = flux2(args);
        EXPECT_EQ(r.exit_code, 0) << r;
        ImageText text;
        if (r.exit_code == 0) read_image(file("out.png"), &text);
        return text["variant"];
    };
    EXPECT_EQ(variant_of({"--model-path", file("base-pipeline")}), "klein (base, CFG)");
    EXPECT_EQ(variant_of({"--model-path", file("distilled-pipeline")}), "klein (distilled)");
    EXPECT_EQ(variant_of({"--model-path", file("tiny-klein-base.safetensors"), "--base-model-path",
                          file("distilled-pipeline")}),
              "klein (base, CFG)");
    EXPECT_EQ(variant_of({"--model-path", file("base-pipeline"), "--transformer-weights-path",
                          file("tiny-klein.safetensors")}),
              "klein (distilled)");
    EXPECT_EQ(variant_of({"--model-path", file("base-pipeline"), "--klein-mode", "distilled"}), "klein (distilled)");
}

// A transformer-only repo from the HF cache takes its VAE from --base-model-path (another cached repo) and
// prefers the *-mixed file when a folder holds both NVFP4 variants.
TEST_F(Cli, ResolvesTransformerOnlyRepoAndBaseModelFromCache) {
    const fs::path transformer = hf_snapshot("test-org/tiny-dev-nvfp4");
    fs::create_symlink(data_path("tiny-dev-nvfp4.safetensors"), transformer / "flux2-tiny-dev-nvfp4.safetensors");
    fs::create_symlink(data_path("tiny-dev-nvfp4-mixed.safetensors"),
                       transformer / "flux2-tiny-dev-nvfp4-mixed.safetensors");
    const fs::path base = hf_snapshot("test-org/tiny-dev-base");
    fs::create_directory_symlink(data_path("tiny-vae"), base / "vae");

    auto g = SafetensorsFile::open(data_path("pipeline-golden.safetensors"));
    SafetensorsWriter embeds;
    embeds.add_f32("prompt_embeds", golden(*g, "dev.prompt_embeds"));
    embeds.write(file("embeds.safetensors"));

    RunResult r = flux2({"generate", "--model-path", "test-org/tiny-dev-nvfp4", "--base-model-path",
                         "test-org/tiny-dev-base", "--prompt-embeds", file("embeds.safetensors"), "--width", "32",
                         "--height", "32", "--num-inference-steps", "1", "--output-path", file("out.png")});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.err, "using the mixed one(s) (flux2-tiny-dev-nvfp4-mixed.safetensors)")) << r.err;
    EXPECT_TRUE(contains(r.err, "taking missing components from the base model " + base.string())) << r.err;
    ImageText text;
    read_image(file("out.png"), &text);
    EXPECT_EQ(text["model"], transformer.string());
}

// ---- forward ----

TEST_F(CliForward, KleinBf16MatchesDiffusers) {
    // --log-level works after the subcommand too: with "warn" a good run says nothing.
    RunResult r = flux2({"forward", "--model", data_path("tiny-klein-bf16.safetensors"), "--inputs", write_inputs(),
                         "--output", file("out.safetensors"), "--log-level", "warn"});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_EQ(r.err, "");
    EXPECT_LE(test::rel_error(output(), expected("out_bf16weights")), 1e-5);
}

TEST_F(CliForward, KleinNvfp4W4A4MatchesDiffusers) {
    RunResult r = flux2({"forward", "--model", data_path("tiny-klein-nvfp4.safetensors"), "--inputs", write_inputs(),
                         "--output", file("out.safetensors"), "--activations", "w4a4"});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_LE(test::rel_error(output(), expected("out_nvfp4_w4a4")), 2e-3);
    // The W4A4 emulation is a different computation from W4A16: the flag must reach the backend.
    EXPECT_GT(test::rel_error(output(), expected("out_nvfp4_w4a16")), 0.0);
}

TEST_F(CliForward, MissingTimestepNamesKeyAndShape) {
    RunResult r = flux2({"forward", "--model", data_path("tiny-klein-bf16.safetensors"), "--inputs",
                         write_inputs("timestep"), "--output", file("out.safetensors")});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "'timestep'")) << r.err;
    EXPECT_TRUE(contains(r.err, "[B]")) << r.err;
    EXPECT_TRUE(contains(r.err, file("inputs.safetensors"))) << r.err;
    EXPECT_FALSE(fs::exists(file("out.safetensors")));
}

TEST_F(CliForward, MisShapedHiddenStatesNamesExpectedShape) {
    RunResult r = flux2({"forward", "--model", data_path("tiny-klein-bf16.safetensors"), "--inputs",
                         write_inputs("", true), "--output", file("out.safetensors")});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "hidden_states must be [B, Li, 128], got [1, 32, 64]")) << r.err;
}

// ---- bad input ----

TEST_F(Cli, RejectsBadSizeAndOutputPathBeforeAnyWork) {
    RunResult r = flux2({"generate", "--model-path", data_path("tiny-dev-bf16.safetensors"), "--prompt", "x", "--width",
                         "100", "--height", "64"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "multiples of 16")) << r.err;
    EXPECT_TRUE(contains(r.err, "100x64")) << r.err;
    // Checked before anything is loaded, also when the model is left out.
    r = flux2({"generate", "--width", "100"});
    EXPECT_EQ(r.exit_code, 1) << r;
    r = flux2({"generate", "--output-path", file("cat.jpg")});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "PNG only")) << r.err;
    EXPECT_FALSE(fs::exists(file("cat.jpg")));
}

TEST_F(Cli, RejectsMissingModelPath) {
    const std::string missing = file("no-such-model.safetensors");
    RunResult r = flux2({"generate", "--model-path", missing, "--prompt", "x"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "--model-path")) << r.err;
    EXPECT_TRUE(contains(r.err, missing)) << r.err;
    EXPECT_TRUE(contains(r.err, "does not exist")) << r.err;
}

TEST_F(Cli, RepoIdNotInCacheSaysWhereItLooked) {
    RunResult r = flux2({"generate", "--model-path", "black-forest-labs/FLUX.2-klein-4B", "--prompt", "x"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "black-forest-labs/FLUX.2-klein-4B")) << r.err;
    EXPECT_TRUE(contains(r.err, "Hugging Face cache")) << r.err;
    EXPECT_TRUE(contains(r.err, hf_home() + "/hub/models--black-forest-labs--FLUX.2-klein-4B")) << r.err;
    EXPECT_TRUE(contains(r.err, "never downloads")) << r.err;
}

TEST_F(Cli, PromptWithoutTextEncoderListsWhatWasLookedFor) {
    RunResult r = flux2({"generate", "--model-path", data_path("tiny-dev-bf16.safetensors"), "--vae-path",
                         data_path("tiny-vae"), "--prompt", "a cat", "--width", "32", "--height", "32"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "no text encoder")) << r.err;
    EXPECT_TRUE(contains(r.err, "--prompt-embeds")) << r.err;
    EXPECT_TRUE(contains(r.err, "base model black-forest-labs/FLUX.2-dev")) << r.err;
    EXPECT_TRUE(contains(r.err, hf_home() + "/hub/models--black-forest-labs--FLUX.2-dev")) << r.err;
    EXPECT_TRUE(contains(r.err, "--text-encoder")) << r.err;
}

TEST_F(Cli, InspectNamesTruncatedFile) {
    const std::string whole = read_file(data_path("tiny-klein-bf16.safetensors"));
    const std::string truncated = file("truncated.safetensors");
    test::write_bytes(truncated, whole.substr(0, whole.size() / 2));
    RunResult r = flux2({"inspect", truncated});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, truncated)) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;

    RunResult ok = flux2({"inspect", "--summary", data_path("tiny-klein-bf16.safetensors")});
    EXPECT_EQ(ok.exit_code, 0) << ok;
    EXPECT_TRUE(contains(ok.out, "tensors:")) << ok.out;
}

TEST_F(Cli, RejectsUnknownFlagsAndMissingRequiredOptions) {
    RunResult r = flux2({"generate", "--no-such-flag"});
    EXPECT_NE(r.exit_code, 0) << r;
    EXPECT_NE(r.exit_code, 1) << r;  // a command-line error, not a run-time one
    EXPECT_TRUE(contains(r.err, "--no-such-flag")) << r.err;
    r = flux2({"generate", "--seed", "-1"});
    EXPECT_NE(r.exit_code, 0) << r;
    EXPECT_NE(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "--seed")) << r.err;
    r = flux2({"forward", "--model", "x"});
    EXPECT_NE(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.err, "--inputs")) << r.err;
    r = flux2({});
    EXPECT_NE(r.exit_code, 0) << r;
}

// ---- help ----

TEST_F(Cli, HelpMentionsCommandsAndMainFlags) {
    RunResult r = flux2({"--help"});
    EXPECT_EQ(r.exit_code, 0) << r;
    for (const char* s : {"generate", "encode-prompt", "forward", "inspect", "tokenize", "bench", "--log-level"})
        EXPECT_TRUE(contains(r.out, s)) << s << "\n" << r.out;

    r = flux2({"generate", "--help"});
    EXPECT_EQ(r.exit_code, 0) << r;
    for (const char* s :
         {"--model-path", "--transformer-weights-path", "--base-model-path", "--prompt", "--width", "--height",
          "--num-inference-steps", "--guidance-scale", "--seed", "--image", "--output-path", "--device"})
        EXPECT_TRUE(contains(r.out, s)) << s << "\n" << r.out;
}

}  // namespace
}  // namespace flux2
