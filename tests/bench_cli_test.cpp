// `flux2 bench` on a tiny checkpoint on the CPU: the table, and --lora-rank sets (each timed after the step without
// LoRA, with its switch-versus-file line), which is how the LoRA cost is measured on the GPU (PERFORMANCE.md); and
// --pipeline on a tiny pipeline folder.
#include <gtest/gtest.h>

#include "cli_runner.h"

namespace flux2 {
namespace {

using test::Cli;
using test::contains;
using test::RunResult;

TEST_F(Cli, BenchTimesLoraSetsAfterTheBaseStep) {
    const RunResult r =
        flux2({"bench", "--model", test::data_path("tiny-klein-bf16.safetensors"), "--device", "cpu", "--resolutions",
               "64", "--steps", "1", "--warmup", "1", "--lora-rank", "4", "--lora-rank", "2,3"});
    ASSERT_EQ(r.exit_code, 0) << r;
    const size_t base = r.out.find("checkpoint 64     cpu  "), one = r.out.find("cpu+lora4 "),
                 two = r.out.find("cpu+lora2,3 ");
    ASSERT_NE(base, std::string::npos) << r.out;
    ASSERT_NE(one, std::string::npos) << r.out;
    ASSERT_NE(two, std::string::npos) << r.out;
    EXPECT_LT(base, one);
    EXPECT_LT(one, two);
    // The second set's two rank-2/3 LoRAs join into one branch of rank 5 on every linear (21 in tiny klein).
    EXPECT_TRUE(contains(r.out, "bf16->f32 + lora r4 x21")) << r.out;
    EXPECT_TRUE(contains(r.out, "bf16->f32 + lora r5 x21")) << r.out;
    size_t switches = 0;
    for (size_t at = r.out.find("lora switch: detach + first step"); at != std::string::npos;
         at = r.out.find("lora switch: detach + first step", at + 1))
        ++switches;
    EXPECT_EQ(switches, 2u) << r.out;
    EXPECT_TRUE(contains(r.out, "reading the adapter file(s)")) << r.out;

    const RunResult bad = flux2({"bench", "--model", test::data_path("tiny-klein-bf16.safetensors"), "--device", "cpu",
                                 "--resolutions", "64", "--lora-rank", "4,0"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_TRUE(contains(bad.err, "--lora-rank: ranks must be positive, got 0")) << bad.err;
}

// --pipeline: the whole pipeline of a folder (here the tiny random one), loading then every phase per resolution.
TEST_F(Cli, BenchPipelineTimesEveryPhase) {
    const RunResult r = flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--resolutions", "32,64",
                               "--steps", "2", "--repeat", "2"});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.out, "encode s denoise s    s/step  decode s    total s    peak GB")) << r.out;
    EXPECT_TRUE(contains(r.out, "(after loading)")) << r.out;
    for (const char* row : {"cpu    32         2 ", "cpu    64         2 "})
        EXPECT_TRUE(contains(r.out, row)) << row << "\n" << r.out;
    // Without --steps, the model's own count (the tiny pipeline is klein distilled: 4).
    const RunResult d =
        flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--resolutions", "32", "--repeat", "1"});
    ASSERT_EQ(d.exit_code, 0) << d;
    EXPECT_TRUE(contains(d.out, "cpu    32         4 ")) << d.out;

    const RunResult gpus = flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--gpus", "2"});
    EXPECT_NE(gpus.exit_code, 0);
    EXPECT_TRUE(contains(gpus.err, "--pipeline times the whole pipeline on one device")) << gpus.err;
    const RunResult size = flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--resolutions", "40"});
    EXPECT_NE(size.exit_code, 0);
    EXPECT_TRUE(contains(size.err, "multiples of 16, got 40")) << size.err;
}

}  // namespace
}  // namespace flux2
