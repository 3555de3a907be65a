// --gpus / --parallel on the command line, run on the CPU (N CPU ranks with the in-process communicator): the
// test suite's demo (the tiny random pipeline, 4 heads) from 2 and 4 ranks, Ulysses and tensor parallel, against
// one; CFG parallelism on klein base; and the refusals.
#include <gtest/gtest.h>

#include "cli_runner.h"
#include "io/image.h"

namespace flux2 {
namespace {

using test::Cli;
using test::contains;
using test::RunResult;

std::vector<std::string> demo_args(std::vector<std::string> extra) {
    std::vector<std::string> args = {"generate",
                                     "--prompt",
                                     "a lighthouse at dusk",
                                     "--width",
                                     "64",
                                     "--height",
                                     "32",
                                     "--num-inference-steps",
                                     "2",
                                     "--seed",
                                     "7",
                                     "--device",
                                     "cpu"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

TEST_F(Cli, GenerateOnSeveralCpuRanksMatchesOne) {
    RunResult one = flux2(demo_args({"--output-path", file("one.png")}));
    ASSERT_EQ(one.exit_code, 0) << one;
    const Image a = read_image(file("one.png"));
    for (const std::string mode : {"ulysses", "tp", "ulysses-tp"})
        for (const std::string gpus : {"2", "4"}) {
            if (mode == "ulysses-tp" && gpus == "2") continue;  // a grid needs 2 rows of at least 2
            const std::string out = file(mode + gpus + ".png");
            RunResult r = flux2(demo_args({"--gpus", gpus, "--parallel", mode, "--output-path", out}));
            ASSERT_EQ(r.exit_code, 0) << r;
            const std::string name = mode == "tp"           ? "tensor parallelism"
                                     : mode == "ulysses-tp" ? "Ulysses x tensor parallelism"
                                                            : "Ulysses sequence parallelism";
            EXPECT_TRUE(contains(r.err, name + " on " + gpus + " cpu ranks")) << r.err;
            const Image b = read_image(out);
            ASSERT_EQ(b.rgb.size(), a.rgb.size());
            // The sharded sums round differently in the last bits: at most one level in a pixel.
            int worst = 0;
            for (size_t i = 0; i < a.rgb.size(); ++i) worst = std::max(worst, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
            EXPECT_LE(worst, 1) << mode << " on " << gpus << " ranks";
        }
}

// The two forwards of a CFG step on two CPU ranks: each is the same single-device computation, so the image is the
// one device's exactly.
TEST_F(Cli, CfgParallelOnTwoRanksMatchesOne) {
    RunResult one = flux2(demo_args({"--klein-mode", "base", "--output-path", file("one.png")}));
    ASSERT_EQ(one.exit_code, 0) << one;
    RunResult two = flux2(
        demo_args({"--klein-mode", "base", "--gpus", "2", "--parallel", "cfg", "--output-path", file("two.png")}));
    ASSERT_EQ(two.exit_code, 0) << two;
    EXPECT_TRUE(contains(two.err, "CFG parallelism on 2 cpu ranks")) << two.err;
    EXPECT_EQ(read_image(file("two.png")).rgb, read_image(file("one.png")).rgb);

    RunResult distilled = flux2(
        demo_args({"--klein-mode", "distilled", "--gpus", "2", "--parallel", "cfg", "--output-path", file("x.png")}));
    EXPECT_NE(distilled.exit_code, 0);
    EXPECT_TRUE(contains(distilled.err, "it needs klein base with --guidance-scale above 1")) << distilled.err;
    RunResult three =
        flux2(demo_args({"--klein-mode", "base", "--gpus", "3", "--parallel", "cfg", "--output-path", file("x.png")}));
    EXPECT_NE(three.exit_code, 0);
    EXPECT_TRUE(contains(three.err, "it takes 2 GPUs, got 3")) << three.err;
}

TEST_F(Cli, ParallelFlagsSayWhatIsWrong) {
    RunResult heads = flux2(demo_args({"--gpus", "3", "--output-path", file("x.png")}));
    EXPECT_NE(heads.exit_code, 0);
    EXPECT_TRUE(contains(heads.err, "3 GPUs do not divide this model's 4 heads")) << heads.err;
    RunResult tp = flux2(demo_args({"--gpus", "3", "--parallel", "tp", "--output-path", file("x.png")}));
    EXPECT_NE(tp.exit_code, 0);
    EXPECT_TRUE(contains(tp.err, "tensor parallelism splits the attention heads")) << tp.err;
    RunResult bad = flux2(demo_args({"--gpus", "2", "--parallel", "ring", "--output-path", file("x.png")}));
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_TRUE(contains(bad.err, "--parallel must be ulysses, tp, ulysses-tp or cfg, got 'ring'")) << bad.err;
    RunResult grid =
        flux2(demo_args({"--gpus", "4", "--parallel", "ulysses-tp", "--tp-size", "4", "--output-path", file("x.png")}));
    EXPECT_NE(grid.exit_code, 0);
    EXPECT_TRUE(contains(grid.err, "it needs --tp-size of at least 2 dividing --gpus into at least 2 rows"))
        << grid.err;
}

}  // namespace
}  // namespace flux2
