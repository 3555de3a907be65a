// `flux2 bench` on a tiny checkpoint on the CPU: the table, and --lora-rank sets (each timed after the step without
// LoRA, with its switch-versus-file line), which is how the LoRA cost is measured on the GPU (PERFORMANCE.md); and
// --pipeline on a tiny pipeline folder.
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <sstream>

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
    EXPECT_TRUE(contains(r.out, "(building the branches ")) << r.out;
    EXPECT_FALSE(contains(r.out, "device over the")) << r.out;  // the clock and power lines are a GPU's

    const RunResult bad = flux2({"bench", "--model", test::data_path("tiny-klein-bf16.safetensors"), "--device", "cpu",
                                 "--resolutions", "64", "--lora-rank", "4,0"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_TRUE(contains(bad.err, "--lora-rank: ranks must be positive, got 0")) << bad.err;
}

// --host-latents: after each row, the same step from the host in a row of its own, whose velocity equals the
// first's (the rel column, 8th, is exactly 0).
TEST_F(Cli, BenchHostLatentsRowsFollowEachRow) {
    const RunResult r =
        flux2({"bench", "--model", test::data_path("tiny-klein-bf16.safetensors"), "--device", "cpu", "--resolutions",
               "64", "--steps", "1", "--warmup", "1", "--lora-rank", "4", "--host-latents"});
    ASSERT_EQ(r.exit_code, 0) << r;
    std::vector<std::string> labels;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("checkpoint", 0) != 0) continue;
        std::istringstream fields(line);
        std::vector<std::string> f{std::istream_iterator<std::string>(fields), std::istream_iterator<std::string>()};
        ASSERT_GE(f.size(), 8u) << line;
        labels.push_back(f[2]);
        if (f[2].find("/host") != std::string::npos) EXPECT_EQ(f[7], "0") << line;
    }
    EXPECT_EQ(labels, (std::vector<std::string>{"cpu", "cpu/host", "cpu+lora4", "cpu/host+lora4"})) << r.out;
}

// --attention names a path per run; unknown ones are refused by bench and generate alike, and the CPU (which
// computes attention in f32) refuses a GPU path by name.
TEST_F(Cli, AttentionFlagRefusesUnknownAndGpuOnlyPaths) {
    const std::string model = test::data_path("tiny-klein-bf16.safetensors");
    const RunResult bench = flux2({"bench", "--model", model, "--device", "cpu", "--attention", "auto,fp16"});
    EXPECT_NE(bench.exit_code, 0);
    EXPECT_TRUE(contains(bench.err, "--attention: expected auto, bf16, fp8 or fp8-flux2, got 'fp16'")) << bench.err;
    const RunResult cpu = flux2({"bench", "--model", model, "--device", "cpu", "--attention", "fp8", "--resolutions",
                                 "32", "--steps", "1", "--warmup", "1"});
    EXPECT_NE(cpu.exit_code, 0);
    EXPECT_TRUE(contains(cpu.err, "attention 'fp8' is a GPU path")) << cpu.err;
    const RunResult generate = flux2({"generate", "--attention", "fp16", "--prompt", "x"});
    EXPECT_NE(generate.exit_code, 0);
    EXPECT_TRUE(contains(generate.err, "--attention")) << generate.err;
}

// --fp8-accumulation likewise: unknown modes refused by bench and generate, and the CPU refuses the GPU-only choice.
TEST_F(Cli, Fp8AccumulationFlagRefusesUnknownModesAndTheCpu) {
    const std::string model = test::data_path("tiny-klein-bf16.safetensors");
    const RunResult bench = flux2({"bench", "--model", model, "--device", "cpu", "--fp8-accumulation", "fast,fp16"});
    EXPECT_NE(bench.exit_code, 0);
    EXPECT_TRUE(contains(bench.err, "--fp8-accumulation: expected fast or precise, got 'fp16'")) << bench.err;
    const RunResult cpu = flux2({"bench", "--model", model, "--device", "cpu", "--fp8-accumulation", "precise",
                                 "--resolutions", "32", "--steps", "1", "--warmup", "1"});
    EXPECT_NE(cpu.exit_code, 0);
    EXPECT_TRUE(contains(cpu.err, "fp8 accumulation 'precise' applies to the CUDA fp8 path")) << cpu.err;
    const RunResult generate = flux2({"generate", "--fp8-accumulation", "fp16", "--prompt", "x"});
    EXPECT_NE(generate.exit_code, 0);
    EXPECT_TRUE(contains(generate.err, "--fp8-accumulation")) << generate.err;
}

// The relative-difference column of one row ("checkpoint <res> <label> s/step TFLOP/s peak held rel ...").
double rel_column(const std::string& out, const std::string& row_start) {
    const size_t at = out.find(row_start);
    if (at == std::string::npos) return -1.0;
    std::istringstream line(out.substr(at, out.find('\n', at) - at));
    std::string model, res, label, step, tflops, peak, held, rel;
    line >> model >> res >> label >> step >> tflops >> peak >> held >> rel;
    return std::stod(rel);
}

// --save-outputs then --compare-outputs: how the split runs on several GPUs are checked against one GPU at full
// size (scripts/device-test.sh); here two CPU ranks against one.
TEST_F(Cli, BenchComparesSplitRunsWithSavedOneDeviceOutputs) {
    const std::string ref = file("one.safetensors");
    auto bench = [&](std::vector<std::string> extra, const std::string& resolutions = "32,64") {
        std::vector<std::string> args = {"bench",     "--model", test::data_path("tiny-klein-bf16.safetensors"),
                                         "--device",  "cpu",     "--resolutions",
                                         resolutions, "--steps", "1",
                                         "--warmup",  "1"};
        args.insert(args.end(), extra.begin(), extra.end());
        return flux2(args);
    };
    const RunResult one = bench({"--save-outputs", ref});
    ASSERT_EQ(one.exit_code, 0) << one;
    for (const std::string mode : {"ulysses", "tp"}) {
        const RunResult r = bench({"--gpus", "2", "--parallel", mode, "--compare-outputs", ref});
        ASSERT_EQ(r.exit_code, 0) << r;
        for (const std::string res : {"32 ", "64 "}) {
            const double rel = rel_column(r.out, "checkpoint " + res);
            EXPECT_GE(rel, 0.0) << r.out;
            EXPECT_LE(rel, 1e-5) << mode << " at " << res << "\n" << r.out;
        }
    }
    // Other weights (the same model quantized to NVFP4): the comparison shows the difference.
    const RunResult other =
        flux2({"bench", "--model", test::data_path("tiny-klein-nvfp4.safetensors"), "--device", "cpu", "--resolutions",
               "32", "--steps", "1", "--warmup", "1", "--compare-outputs", ref});
    ASSERT_EQ(other.exit_code, 0) << other;
    EXPECT_GT(rel_column(other.out, "checkpoint 32 "), 1e-3) << other.out;
    const RunResult missing = bench({"--compare-outputs", ref}, "48");
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_TRUE(contains(missing.err, "has no output default@48#0")) << missing.err;
}

// --vae: the decode whole and in tiles on the tiny VAE, at a size that takes 2x2 tiles of 512 px.
TEST_F(Cli, BenchVaeTimesWholeAndTiledDecodes) {
    const RunResult r = flux2(
        {"bench", "--vae", test::data_path("tiny-vae"), "--device", "cpu", "--resolutions", "576", "--repeat", "1"});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.out, "576    whole ")) << r.out;
    const size_t tiled = r.out.find("576    tiled ");
    ASSERT_NE(tiled, std::string::npos) << r.out;
    std::istringstream row(r.out.substr(tiled, r.out.find('\n', tiled) - tiled));
    std::string res, mode, seconds, peak, tiles;
    double rel = -1;
    row >> res >> mode >> seconds >> peak >> rel >> tiles;
    EXPECT_EQ(tiles, "2x2") << r.out;
    EXPECT_GT(rel, 0.0) << r.out;  // tiles see their own GroupNorm statistics and attention
    EXPECT_LT(rel, 0.5) << r.out;

    const RunResult missing = flux2({"bench", "--vae", file("nope"), "--device", "cpu", "--resolutions", "64"});
    EXPECT_NE(missing.exit_code, 0);
    EXPECT_TRUE(contains(missing.err, "nope: no such file or folder")) << missing.err;
}

// --pipeline: the whole pipeline of a folder (here the tiny random one), loading then every phase per resolution.
// The tiny dev-style folder (`--save-pipeline --model tiny-dev`) has what the real-size dev one has: a Mistral-shaped
// text encoder in NVFP4 whose file holds the 30 layers dev reads of its 40, the reduced Tekken tokenizer, a
// transformer with the guidance embedding. `generate` takes dev's whole path through it.
TEST_F(Cli, TinyDevPipelineRunsDevsPath) {
    const std::string dir = file("tiny-dev");
    const RunResult w = flux2({"bench", "--save-pipeline", dir, "--model", "tiny-dev"});
    ASSERT_EQ(w.exit_code, 0) << w;
    const RunResult g =
        flux2({"generate", "--model-path", dir, "--prompt", "a red circle", "--width", "32", "--height", "32",
               "--num-inference-steps", "2", "--device", "cpu", "--output-path", file("tiny-dev.png")});
    ASSERT_EQ(g.exit_code, 0) << g;
    EXPECT_TRUE(contains(g.err, "text encoder mistral: hidden 64, 40 layers")) << g.err;
    EXPECT_TRUE(contains(g.err, "loaded text encoder layers 0..29 of 40")) << g.err;
    EXPECT_TRUE(contains(g.err, "linear layers: nvfp4 x210")) << g.err;
    EXPECT_TRUE(contains(g.err, "guidance embedding on")) << g.err;
    EXPECT_TRUE(contains(g.err, "dev: 32x32, 2 steps, guidance 4")) << g.err;
    EXPECT_TRUE(test::fs::exists(file("tiny-dev.png")));

    const RunResult bad = flux2({"bench", "--save-pipeline", file("x"), "--model", "tiny-klein"});
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_TRUE(contains(bad.err, "--model dev, klein-4b, klein-9b, tiny or tiny-dev, got tiny-klein")) << bad.err;
}

TEST_F(Cli, BenchPipelineTimesEveryPhase) {
    const RunResult r = flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--resolutions", "32,64",
                               "--steps", "2", "--repeat", "2"});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.out,
                         "encode s denoise s    s/step  decode s    total s    peak GB     enc GB denoise GB "
                         " decode GB  device GB"))
        << r.out;
    EXPECT_TRUE(contains(r.out, "(after loading)")) << r.out;
    EXPECT_FALSE(contains(r.out, "device over the")) << r.out;  // clock and power are read on a GPU only
    for (const char* row : {"cpu    32         2 ", "cpu    64         2 "}) {
        ASSERT_TRUE(contains(r.out, row)) << row << "\n" << r.out;
        // Every phase has its own peak (the process's resident set here), and the request's is their largest.
        const size_t at = r.out.find(row);
        std::istringstream line(r.out.substr(at, r.out.find('\n', at) - at));
        std::string path, res, steps, load, device;
        double encode = 0, denoise = 0, per_step = 0, decode = 0, total = 0, peak = 0, enc_gb = 0, den_gb = 0,
               dec_gb = 0;
        line >> path >> res >> steps >> load >> encode >> denoise >> per_step >> decode >> total >> peak >> enc_gb >>
            den_gb >> dec_gb >> device;
        ASSERT_FALSE(line.fail()) << r.out;
        EXPECT_EQ(device, "-") << "the CPU has no device memory to report\n" << r.out;
        for (double gb : {enc_gb, den_gb, dec_gb}) {
            EXPECT_GT(gb, 0.0) << r.out;
            EXPECT_LE(gb, peak) << r.out;
        }
        EXPECT_DOUBLE_EQ(peak, std::max({enc_gb, den_gb, dec_gb})) << r.out;
    }
    // Without --steps, the model's own count (the tiny pipeline is klein distilled: 4).
    const RunResult d =
        flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--resolutions", "32", "--repeat", "1"});
    ASSERT_EQ(d.exit_code, 0) << d;
    EXPECT_TRUE(contains(d.out, "cpu    32         4 ")) << d.out;

    // --cold: a load from the disk first, with what was still cached.
    const RunResult cold = flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--resolutions", "32",
                                  "--steps", "1", "--repeat", "1", "--cold"});
    ASSERT_EQ(cold.exit_code, 0) << cold;
    EXPECT_TRUE(contains(cold.out, "cold load: ")) << cold.out;
    EXPECT_TRUE(contains(cold.out, "in the page cache when it started)")) << cold.out;
    const RunResult cold_step = flux2({"bench", "--model", "klein-4b", "--device", "cpu", "--cold"});
    EXPECT_NE(cold_step.exit_code, 0);
    EXPECT_TRUE(contains(cold_step.err, "--cold times loading a --pipeline folder")) << cold_step.err;

    const RunResult gpus = flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--gpus", "2"});
    EXPECT_NE(gpus.exit_code, 0);
    EXPECT_TRUE(contains(gpus.err, "--pipeline times the whole pipeline on one device")) << gpus.err;
    const RunResult size = flux2({"bench", "--pipeline", demo_dir(), "--device", "cpu", "--resolutions", "40"});
    EXPECT_NE(size.exit_code, 0);
    EXPECT_TRUE(contains(size.err, "multiples of 16, got 40")) << size.err;
}

}  // namespace
}  // namespace flux2
