// `flux2 eval` end to end: scoring the generator's own images, the pass-rate gates, and one generated prompt.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace flux2::test {
namespace {

class CliEval : public Cli {};

TEST_F(CliEval, GeneratorImagesScoreFull) {
    const RunResult r = flux2({"eval", "--check-images", data_path("demo/eval"), "--json"});
    ASSERT_EQ(r.exit_code, 0) << r;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["scores"]["seen"]["prompts"], 24);
    EXPECT_EQ(j["scores"]["heldout"]["prompts"], 16);
    EXPECT_EQ(j["scores"]["seen"]["pass_rate"], 100.0);
    EXPECT_EQ(j["scores"]["heldout"]["pass_rate"], 100.0);
    EXPECT_EQ(j["prompts"].size(), 40u);
    EXPECT_EQ(j["prompts"][0]["pass"], true);
}

TEST_F(CliEval, TextReportAndGates) {
    RunResult r = flux2({"eval", "--check-images", data_path("demo/eval"), "--split", "heldout", "--limit", "3"});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.out, "PASS heldout-24")) << r;
    EXPECT_TRUE(contains(r.out, "heldout    3/3   prompts pass (100.0%)")) << r;
    EXPECT_FALSE(contains(r.out, "seen-00")) << r;

    // The examples list includes a wrong image: 3 of 4 seen prompts pass.
    r = flux2({"eval", "--prompts", data_path("demo/expectations.json"), "--check-images", data_path("demo"),
               "--require-seen", "80"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.out, "FAIL wrong-1")) << r;
    EXPECT_TRUE(contains(r.err, "seen pass rate 75% is below the required 80%")) << r;
}

TEST_F(CliEval, GeneratesWithThePipeline) {
    // The built-in demo model (random weights until the trained one replaces it): the path works, the score is
    // whatever it is.
    const RunResult r =
        flux2({"eval", "--limit", "1", "--num-inference-steps", "2", "--json", "--output-dir", file("images")});
    ASSERT_EQ(r.exit_code, 0) << r;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["prompts"].size(), 1u);
    EXPECT_EQ(j["run"]["steps"], 2);
    EXPECT_TRUE(fs::exists(file("images/seen-00.png")));
}

// The trained demo model (assets/demo-model, docs/DEMO_MODEL.md "Scores") on the CPU at 20 steps, from its bf16
// diffusers transformer and from its NVFP4-mixed file. The floors sit a little under what was measured when the
// model was committed (bf16: 84.9% / 76.8% of checks, 4 + 5 of 40 prompts pass): they catch a change that makes the
// pictures worse; issue 16's targets (90% / 75% of prompts) are not met by this model yet. The NVFP4 path must stay
// within 5 points of the bf16 one.
TEST_F(CliEval, TrainedDemoModelScores) {
    const std::string model = std::string(FLUX2_ASSETS_DIR) + "/demo-model";
    auto eval = [&](std::vector<std::string> extra) {
        std::vector<std::string> args = {"eval", "--model-path", model, "--num-inference-steps", "20", "--json"};
        args.insert(args.end(), extra.begin(), extra.end());
        const RunResult r = flux2(args);
        EXPECT_EQ(r.exit_code, 0) << r;
        return nlohmann::json::parse(r.out)["scores"];
    };
    const nlohmann::json bf16 = eval({});
    const nlohmann::json nvfp4 =
        eval({"--transformer-weights-path", model + "/flux2-klein-base-demo-nvfp4-mixed.safetensors"});
    for (const char* split : {"seen", "heldout"}) {
        std::printf("demo model, %s: bf16 %.1f%% of prompts (%.1f%% of checks), nvfp4 %.1f%% (%.1f%%)\n", split,
                    bf16[split]["pass_rate"].get<double>(), bf16[split]["check_rate"].get<double>(),
                    nvfp4[split]["pass_rate"].get<double>(), nvfp4[split]["check_rate"].get<double>());
        EXPECT_NEAR(nvfp4[split]["check_rate"].get<double>(), bf16[split]["check_rate"].get<double>(), 5.0) << split;
    }
    EXPECT_GE(bf16["seen"]["check_rate"].get<double>(), 80.0);
    EXPECT_GE(bf16["heldout"]["check_rate"].get<double>(), 72.0);
    EXPECT_GE(bf16["all"]["pass_rate"].get<double>(), 15.0);
}

}  // namespace
}  // namespace flux2::test
