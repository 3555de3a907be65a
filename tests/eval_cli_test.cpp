// `flux2 eval` end to end: scoring the generator's own images, the pass-rate gates, and one generated prompt.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace flux2::test {
namespace {

class CliEval : public Cli {
protected:
    // `flux2 eval` of the committed demo model at 10 steps (about 2 minutes here);
    // extra "NVFP4" stands for its NVFP4-mixed file.
    // `label` names the run in the printed lines.
    nlohmann::json demo_model_scores(const std::vector<std::string>& extra, const std::string& label = "") {
        return scores_of(flux2(demo_eval_args(extra)), label);
    }
    static std::vector<std::string> demo_eval_args(const std::vector<std::string>& extra) {
        const std::string model = std::string(FLUX2_ASSETS_DIR) + "/demo-model";
        std::vector<std::string> args = {"eval", "--model-path", model, "--num-inference-steps", "10", "--json"};
        for (const std::string& e : extra)
            args.push_back(e == "NVFP4" ? model + "/flux2-klein-base-demo-nvfp4-mixed.safetensors" : e);
        return args;
    }
    // The scores of a finished `flux2 eval --json`, printed; null (and a failure) where it did not succeed.
    static nlohmann::json scores_of(const RunResult& r, const std::string& label) {
        EXPECT_EQ(r.exit_code, 0) << label << ": " << r;
        if (r.exit_code != 0) return nullptr;
        const nlohmann::json scores = nlohmann::json::parse(r.out)["scores"];
        for (const char* split : {"seen", "heldout", "all"})
            if (scores.contains(split))
                std::printf("demo model%s, %s: %.1f%% of prompts pass, %.1f%% of checks\n", label.c_str(), split,
                            scores[split]["pass_rate"].get<double>(), scores[split]["check_rate"].get<double>());
        std::fflush(stdout);  // a run stopped by a timeout still shows what finished
        return scores;
    }
};

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
    // No --model-path: the trained demo model in assets/ (the score tests below hold its numbers).
    const RunResult r =
        flux2({"eval", "--limit", "1", "--num-inference-steps", "2", "--json", "--output-dir", file("images")});
    ASSERT_EQ(r.exit_code, 0) << r;
    const nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["prompts"].size(), 1u);
    EXPECT_EQ(j["run"]["steps"], 2);
    EXPECT_TRUE(contains(r.err, "evaluating the trained demo model")) << r.err;
    EXPECT_TRUE(fs::exists(file("images/seen-00.png")));
}

// The demo model at 10 steps, from its bf16 diffusers transformer and, in a second test, from its NVFP4-mixed file:
// a faster guard than the 50-step score targets (ctest's demo_score_targets, CMakeLists.txt). The floors sit a little
// under what the bf16 transformer scored when run H was committed (CPU, 10 steps: 85.0% of the prompts; 98.4% of the
// seen and 97.6% of the held-out checks); the NVFP4 path must stay within 5 points of those bf16 check rates.
constexpr double kBf16SeenChecks = 98.4, kBf16HeldoutChecks = 97.6;

TEST_F(CliEval, TrainedDemoModelScoresBf16) {
    const nlohmann::json s = demo_model_scores({});
    EXPECT_GE(s["seen"]["check_rate"].get<double>(), 95.0);
    EXPECT_GE(s["heldout"]["check_rate"].get<double>(), 95.0);
    EXPECT_GE(s["all"]["pass_rate"].get<double>(), 75.0);
}

TEST_F(CliEval, TrainedDemoModelScoresNvfp4) {
    const nlohmann::json s = demo_model_scores({"--transformer-weights-path", "NVFP4"}, " (NVFP4)");
    EXPECT_NEAR(s["seen"]["check_rate"].get<double>(), kBf16SeenChecks, 5.0);
    EXPECT_NEAR(s["heldout"]["check_rate"].get<double>(), kBf16HeldoutChecks, 5.0);
}

// Issue 16: every GPU path of the demo model scores within 5 points of the CPU, on the 200-prompt list (one prompt is
// half a point there; on the fixed 40, 2.5) at the test suite's 10 steps. The CPU's score is taken in the same test,
// from the same binary: the bf16 diffusers transformer in f32, the suite's reference. The eight evals run as
// processes side by side: the CPU's keeps the cores busy while the GPU paths, whose tiny model leaves the GPU mostly
// idle, share the card. One after the other they took 389 s on an H200 and later more than 460 s, past what a
// device call leaves after a fresh build.
class CudaDemoEval : public CliEval {
protected:
    void SetUp() override {
#ifdef FLUX2_HAVE_CUDA
        if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible: runs on the GPU machine";
#else
        GTEST_SKIP() << "this build has no CUDA backend (nvcc not found or FLUX2_CUDA=OFF)";
#endif
    }
};

TEST_F(CudaDemoEval, EveryGpuPathScoresWithinFivePointsOfTheCpu) {
    const std::vector<std::string> list = {"--prompts", std::string(FLUX2_ASSETS_DIR) + "/demo_eval_prompts_long.json"};
    const std::string lora = std::string(FLUX2_ASSETS_DIR) + "/demo-lora/demo-stripes-lora-kohya.safetensors:0";
    // The CPU first: the reference the others are held to.
    const std::vector<std::pair<std::string, std::vector<std::string>>> paths = {
        {"CPU", {"--device", "cpu"}},
        {"GPU bf16", {"--device", "cuda", "--precision", "bf16"}},
        {"GPU fp8, FP8 attention", {"--device", "cuda", "--precision", "fp8", "--attention", "fp8"}},
        {"GPU fp8, bf16 attention", {"--device", "cuda", "--precision", "fp8", "--attention", "bf16"}},
        {"GPU NVFP4 file, fp8", {"--device", "cuda", "--transformer-weights-path", "NVFP4", "--precision", "fp8"}},
        {"GPU NVFP4 file, fp8, fp4 residency",
         {"--device", "cuda", "--transformer-weights-path", "NVFP4", "--precision", "fp8", "--residency", "fp4"}},
        {"GPU NVFP4 file, bf16", {"--device", "cuda", "--transformer-weights-path", "NVFP4", "--precision", "bf16"}},
        {"GPU fp8, demo LoRA at strength 0", {"--device", "cuda", "--precision", "fp8", "--lora", lora}},
    };
    std::vector<SpawnedBinary> runs;
    for (size_t i = 0; i < paths.size(); ++i) {
        std::vector<std::string> extra = paths[i].second;
        extra.insert(extra.end(), list.begin(), list.end());
        runs.push_back(start_flux2(demo_eval_args(extra), "eval-" + std::to_string(i)));
    }
    std::vector<nlohmann::json> scores;
    for (size_t i = 0; i < paths.size(); ++i)
        scores.push_back(scores_of(wait_binary(runs[i]), " (" + paths[i].first + ")"));
    ASSERT_FALSE(scores[0].is_null()) << "the CPU's eval failed";
    const double cpu = scores[0]["all"]["pass_rate"].get<double>();
    for (size_t i = 1; i < paths.size(); ++i) {
        const std::string& name = paths[i].first;
        if (scores[i].is_null()) continue;  // scores_of has reported it
        // The score is the pass rate over all 200; the splits are printed. A split is a smaller sample (80 held-out
        // prompts): at 50 steps the GPU's own bf16 path is 3.7 points under the CPU there (docs/DEMO_MODEL.md).
        EXPECT_NEAR(scores[i]["all"]["pass_rate"].get<double>(), cpu, 5.0) << name;
    }
}

}  // namespace
}  // namespace flux2::test
