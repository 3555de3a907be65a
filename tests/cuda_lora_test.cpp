// The LoRA branch on the CUDA backend against the CPU backend (the fp32 reference, itself checked against PEFT in
// lora_golden_test): single linears on the bf16 and fp8 paths (plain, fused gated residual, after a fused
// producer, whose E4M3 output the fp8 branch reads; carried inside the FP8 GEMM, also for tokens whose branch
// dwarfs their values), and the tiny transformers with combined LoRAs on bf16 and NVFP4
// bases within the GPU bounds of the same cases without LoRA, switching adapters between CUDA-graph replays (also
// with NVFP4 codes resident), and branches of several ranks replacing each other on one linear. Skipped without a
// GPU.
#include <cstring>

#include "cuda_test_util.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_registry.h"
#include "quant/nvfp4_quantizer.h"

namespace flux2::test {
namespace {

LinearWeight weight(const Tensor& w, WeightFormat format) {
    if (format != WeightFormat::nvfp4) return dense_bf16_weight(w, "test.lora_base");
    LinearWeight lw;
    lw.name = "test.lora_base";
    lw.out_features = w.dim(0);
    lw.in_features = w.dim(1);
    lw.format = format;
    lw.nvfp4 = quantize_nvfp4_weight(w.f32(), w.dim(0), w.dim(1));
    return lw;
}

class CudaLoraLinear : public CudaTest, public ::testing::WithParamInterface<std::string> {
protected:
    std::string precision() const override { return GetParam(); }
    double tolerance() const { return GetParam() == "fp8" ? 8e-2 : 1e-2; }
};

TEST_P(CudaLoraLinear, MatchesCpu) {
    auto cpu = make_backend(BackendOptions{});
    for (WeightFormat format : {WeightFormat::dense, WeightFormat::nvfp4}) {
        for (int64_t rank : {5, 16}) {
            const int64_t m = 37, n = 176, k = 144;  // n > k: the fp8 path carries the branch in its GEMM
            LinearWeight w = weight(randn({n, k}, 1.0f / std::sqrt(float(k))), format);
            Tensor x = randn({1, m, k});
            const std::vector<float> base = cpu->linear(x, w).to_vector();
            w.lora = random_lora(rank, k, n);
            const std::vector<float> want = cpu->linear(x, w).to_vector();
            ASSERT_GT(rel_error(want, base), 0.2);
            const std::vector<float> got = down(be->linear(up(x), w));
            ASSERT_TRUE(all_finite(got));
            EXPECT_LE(rel_error(got, want), tolerance()) << weight_format_name(format) << " rank " << rank;

            // x += gate * linear(in, w): the fp8 path's fused epilogue plus the gated branch; the two ops elsewhere.
            Tensor r = randn({1, m, n}), gate = randn({1, n}, 0.7f);
            Tensor want_r = r.clone();
            cpu->gated_residual(want_r, gate, cpu->linear(x, w));
            Tensor got_r = up(r);
            be->linear_gated_residual(got_r, up(gate), up(x), w);
            EXPECT_LE(rel_error(down(got_r), want_r.to_vector()), tolerance()) << "gated, rank " << rank;

            // A producer for a layer with a LoRA keeps the layer's input form: E4M3 on the fp8 path (the branch
            // reads the same codes as the base GEMM), BF16 elsewhere.
            Tensor shift = randn({1, k}, 0.3f), scale = randn({1, k}, 0.3f);
            Tensor produced = be->layer_norm_modulate_for(w, up(x), up(shift), up(scale), 1e-6f);
            const bool fp8_layer = GetParam() == "fp8" && format == WeightFormat::nvfp4;
            EXPECT_EQ(produced.dtype(), fp8_layer ? DType::F8_E4M3 : DType::BF16);
            const std::vector<float> want_n =
                cpu->linear(cpu->layer_norm_modulate(x, shift, scale, 1e-6f), w).to_vector();
            EXPECT_LE(rel_error(down(be->linear(produced, w)), want_n), tolerance()) << "after a producer";
        }
    }
    EXPECT_NE(be->path_summary().find("+ lora r16"), std::string::npos) << be->path_summary();
    // fp8 layers with a resident E4M3 weight carry the branch in their GEMM (quant/lora_fp8_tail.h), also where the
    // output is narrower than the input (by default); the others run it beside (the fp4-resident transformer case).
    if (GetParam() == "fp8") {
        EXPECT_NE(be->path_summary().find("+ lora r16 in the fp8 GEMM"), std::string::npos) << be->path_summary();
        LinearWeight narrow = weight(randn({48, 144}, 1.0f / 12.0f), WeightFormat::nvfp4);
        narrow.lora = random_lora(7, 144, 48);
        Tensor x = randn({1, 9, 144});
        EXPECT_LE(rel_error(down(be->linear(up(x), narrow)), cpu->linear(x, narrow).to_vector()), tolerance());
        EXPECT_NE(be->path_summary().find("+ lora r7 in the fp8 GEMM"), std::string::npos) << be->path_summary();
    }
}

// The branch carried in the FP8 GEMM for tokens whose branch dwarfs their own values (rows following the signs of a
// row of A, then B 400 times stronger): their t codes do not fit the token's scale, so the scale grows and the row's
// codes are rescaled on the GPU (lora_fp8_tail.h). Against the CPU, and the layer still carries its branch.
TEST_P(CudaLoraLinear, CarriedBranchFitsTokensWhoseBranchDominates) {
    auto cpu = make_backend(BackendOptions{});
    const int64_t m = 24, n = 160, k = 128;
    LinearWeight w = weight(randn({n, k}, 1.0f / std::sqrt(float(k))), WeightFormat::nvfp4);
    auto l = random_lora(12, k, n);
    Tensor x = randn({1, m, k});
    for (int64_t row = 0; row < m; row += 2) {  // every other token aligned, the rest ordinary
        const int64_t r = row % l->rank;
        for (int64_t i = 0; i < k; ++i) x.f32()[row * k + i] = l->a[r * k + i] >= 0.0f ? 3.0f : -3.0f;
    }
    for (float strength : {1.0f, 400.0f}) {
        auto b = std::make_shared<LoraBranch>(*l);
        for (float& v : b->b) v *= strength;
        b->prepared = nullptr;
        w.lora = b;
        EXPECT_LE(rel_error(down(be->linear(up(x), w)), cpu->linear(x, w).to_vector()), tolerance())
            << "strength " << strength;
    }
    if (GetParam() == "fp8") {
        EXPECT_NE(be->path_summary().find("+ lora r12 in the fp8 GEMM"), std::string::npos) << be->path_summary();
    }
}

// Branches of different ranks replace each other on one layer (each prepared anew, the base untouched), and without
// a branch the layer gives its base output again: each step against the CPU, directly and after a fused producer.
TEST_P(CudaLoraLinear, SwitchingAndDroppingBranchesKeepsTheBase) {
    auto cpu = make_backend(BackendOptions{});
    const int64_t m = 29, n = 192, k = 160;
    LinearWeight w = weight(randn({n, k}, 1.0f / std::sqrt(float(k))), WeightFormat::nvfp4);
    Tensor x = randn({1, m, k});
    const std::vector<float> base = cpu->linear(x, w).to_vector();
    for (int64_t rank : {5, 40, 16, 0, 16}) {
        w.lora = rank ? random_lora(rank, k, n) : nullptr;
        const std::vector<float> want = cpu->linear(x, w).to_vector();
        EXPECT_LE(rel_error(down(be->linear(up(x), w)), want), tolerance()) << "rank " << rank;
        Tensor shift = randn({1, k}, 0.3f), scale = randn({1, k}, 0.3f);
        Tensor produced = be->layer_norm_modulate_for(w, up(x), up(shift), up(scale), 1e-6f);
        EXPECT_LE(rel_error(down(be->linear(produced, w)),
                            cpu->linear(cpu->layer_norm_modulate(x, shift, scale, 1e-6f), w).to_vector()),
                  tolerance())
            << "after a producer, rank " << rank;
    }
    w.lora = nullptr;
    EXPECT_LE(rel_error(down(be->linear(up(x), w)), base), tolerance()) << "no branch after branches";
}

INSTANTIATE_TEST_SUITE_P(Paths, CudaLoraLinear, ::testing::Values("bf16", "fp8"));

struct GpuLoraCase {
    std::string model, base, precision;
    double tolerance;  // the GPU bound of the same case without LoRA (cuda_transformer_test)
    std::string residency = "";
};

class CudaLoraTransformer : public ::testing::TestWithParam<GpuLoraCase> {};

TEST_P(CudaLoraTransformer, MatchesCpuAndPeft) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible: runs on the GPU machine";
    const GpuLoraCase& c = GetParam();
    BackendOptions options;
    options.device = "cuda";
    options.precision = c.precision;
    if (!c.residency.empty()) options.residency = c.residency;
    auto gpu = make_cuda_backend(options);
    auto cpu = make_backend(BackendOptions{});
    const std::string ckpt = data_path("tiny-" + c.model + "-" + c.base + ".safetensors");
    Flux2Transformer on_gpu = Flux2Transformer::load(ckpt, *gpu), on_cpu = Flux2Transformer::load(ckpt, *cpu);
    LoraRegistry registry;
    registry.load("lora1", data_path("lora/tiny-" + c.model + "-lora1-bfl.safetensors"));
    registry.load("lora2", data_path("lora/tiny-" + c.model + "-lora2-diffusers.safetensors"));
    auto inputs = SafetensorsFile::open(data_path("tiny-" + c.model + "-golden.safetensors"));
    auto golden = SafetensorsFile::open(data_path("lora/tiny-" + c.model + "-lora-golden.safetensors"));
    const std::string prefix = c.base == "nvfp4" ? "nvfp4_w4a16_" : "";
    struct Step {
        std::vector<std::pair<std::string, float>> loras;
        std::string key;
    };
    // Switching between steps: each switch records the step anew (CUDA graphs), and "none" returns to the base.
    const std::vector<Step> steps = {{{{"lora1", 0.7f}, {"lora2", 0.4f}}, prefix + "lora1_0p7_lora2_0p4"},
                                     {{{"lora1", 1.0f}}, prefix + "lora1_1p0"},
                                     {{}, c.base == "nvfp4" ? "nvfp4_w4a16" : "base"},
                                     {{{"lora1", 0.7f}, {"lora2", 0.4f}}, prefix + "lora1_0p7_lora2_0p4"}};
    for (const Step& s : steps) {
        registry.set_active(on_gpu, s.loras);
        registry.set_active(on_cpu, s.loras);
        for (int i = 0; i < 3; ++i) {
            const std::string p = "case" + std::to_string(i) + ".";
            Flux2Inputs in = golden_transformer_inputs(*inputs, p, c.model == "dev");
            for (int rep = 0; rep < 2; ++rep) {  // the second call of a shape replays the recorded step
                std::vector<float> got = on_gpu.forward(in).to_vector();
                ASSERT_TRUE(all_finite(got));
                EXPECT_LE(rel_error(got, on_cpu.forward(in).to_vector()), c.tolerance) << s.key << " " << p;
                EXPECT_LE(rel_error(got, read_f32(golden_tensor(*golden, p + "out_" + s.key))), c.tolerance)
                    << s.key << " " << p;
            }
        }
    }
    EXPECT_NE(gpu->path_summary().find("+ lora r"), std::string::npos) << gpu->path_summary();
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

INSTANTIATE_TEST_SUITE_P(Bases, CudaLoraTransformer,
                         ::testing::Values(GpuLoraCase{"dev", "bf16", "bf16", 1e-2},
                                           GpuLoraCase{"klein", "bf16", "bf16", 1e-2},
                                           GpuLoraCase{"dev", "nvfp4", "bf16", 1e-2},
                                           GpuLoraCase{"dev", "nvfp4", "fp8", 3e-2},
                                           GpuLoraCase{"klein", "nvfp4", "fp8", 3e-2},
                                           // NVFP4 codes resident, converted before each GEMM
                                           GpuLoraCase{"dev", "nvfp4", "fp8", 3e-2, "fp4"}),
                         [](const ::testing::TestParamInfo<GpuLoraCase>& info) {
                             return info.param.model + "_" + info.param.base + "_" + info.param.precision +
                                    (info.param.residency.empty() ? "" : "_" + info.param.residency + "_resident");
                         });

}  // namespace
}  // namespace flux2::test
