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

}  // namespace
}  // namespace flux2::test
