// LoRAs on the CPU transformer against diffusers + PEFT (tests/data/lora/README.md): every file format, single and
// combined adapters with strengths, the bf16 and the NVFP4 base (unmerged branch), both tiny models; fp32 within
// 1e-5 like the main goldens. One model serves every case of a test, adapters switched without reloading.
#include <gtest/gtest.h>

#include <algorithm>

#include "backend/backend.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_keys.h"
#include "models/lora/lora_registry.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

struct LoraCase {
    std::string model;  // "dev" / "klein"
    std::string base;   // checkpoint: tests/data/tiny-<model>-<base>, e.g. "bf16.safetensors", "nvfp4-modelopt"
    std::vector<std::pair<std::string, float>> loras;  // file under tests/data/lora, strength
    std::string key;                                   // caseN.out_<key> of tiny-<model>-lora-golden
};

std::ostream& operator<<(std::ostream& os, const LoraCase& c) {
    os << c.model << "/" << c.base << " vs " << c.key << ":";
    for (const auto& [f, s] : c.loras) os << " " << f << "@" << s;
    return os;
}

std::string lora_path(const std::string& file) { return test::data_path("lora/" + file); }

// Runs the three golden cases and returns the largest relative error against caseN.out_<key>.
double max_error(const Flux2Transformer& model, const std::string& m, const std::string& key) {
    auto golden = SafetensorsFile::open(test::data_path("lora/tiny-" + m + "-lora-golden.safetensors"));
    auto inputs = SafetensorsFile::open(test::data_path("tiny-" + m + "-golden.safetensors"));
    double worst = 0;
    for (int i = 0; i < 3; ++i) {
        const std::string prefix = "case" + std::to_string(i) + ".";
        Flux2Inputs in = test::golden_transformer_inputs(*inputs, prefix, m == "dev");
        const TensorInfo& ref = test::golden_tensor(*golden, prefix + "out_" + key);
        Tensor out = model.forward(in);
        EXPECT_EQ(out.shape(), ref.shape);
        worst = std::max(worst, test::rel_error(out.to_vector(), read_f32(ref)));
    }
    return worst;
}

class LoraGolden : public ::testing::TestWithParam<LoraCase> {};

TEST_P(LoraGolden, MatchesPeft) {
    const LoraCase& c = GetParam();
    auto backend = make_backend(BackendOptions{});
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-" + c.model + "-" + c.base), *backend);
    LoraRegistry registry;
    std::vector<std::pair<std::string, float>> active;
    for (const auto& [file, strength] : c.loras) {
        registry.load(file, lora_path(file));
        active.emplace_back(file, strength);
    }
    registry.set_active(model, active);
    EXPECT_LE(max_error(model, c.model, c.key), 1e-5) << c;
}

std::vector<LoraCase> all_cases() {
    std::vector<LoraCase> cases;
    for (std::string m : {"dev", "klein"}) {
        const std::string t = "tiny-" + m + "-";
        for (std::string f : {"diffusers", "bfl", "peft-bfl", "kohya"}) {
            cases.push_back({m, "bf16.safetensors", {{t + "lora1-" + f + ".safetensors", 1.0f}}, "lora1_1p0"});
        }
        cases.push_back({m, "bf16.safetensors", {{t + "lora1-kohya.safetensors", 0.6f}}, "lora1_0p6"});
        cases.push_back({m, "bf16.safetensors", {{t + "lora1-diffusers.safetensors", 0.6f}}, "lora1_0p6"});
        for (std::string f : {"diffusers", "bfl"}) {
            cases.push_back({m, "bf16.safetensors", {{t + "lora2-" + f + ".safetensors", 1.0f}}, "lora2_1p0"});
        }
        const std::vector<std::pair<std::string, std::string>> pairs = {
            {"diffusers", "diffusers"}, {"bfl", "bfl"}, {"kohya", "bfl"}, {"peft-bfl", "diffusers"}};
        for (const auto& [f1, f2] : pairs) {
            cases.push_back({m,
                             "bf16.safetensors",
                             {{t + "lora1-" + f1 + ".safetensors", 0.7f}, {t + "lora2-" + f2 + ".safetensors", 0.4f}},
                             "lora1_0p7_lora2_0p4"});
        }
        cases.push_back({m, "nvfp4.safetensors", {}, "nvfp4_w4a16"});
        cases.push_back({m, "nvfp4.safetensors", {{t + "lora1-diffusers.safetensors", 1.0f}}, "nvfp4_w4a16_lora1_1p0"});
        cases.push_back({m, "nvfp4.safetensors", {{t + "lora1-kohya.safetensors", 1.0f}}, "nvfp4_w4a16_lora1_1p0"});
        cases.push_back({m,
                         "nvfp4.safetensors",
                         {{t + "lora1-bfl.safetensors", 0.7f}, {t + "lora2-diffusers.safetensors", 0.4f}},
                         "nvfp4_w4a16_lora1_0p7_lora2_0p4"});
        // The ModelOpt export (diffusers names, separate q/k/v tensors joined at load): the same dequantized weights
        // as the BFL NVFP4 file, so the same outputs.
        cases.push_back({m, "nvfp4-modelopt", {{t + "lora1-kohya.safetensors", 1.0f}}, "nvfp4_w4a16_lora1_1p0"});
        cases.push_back({m,
                         "nvfp4-modelopt",
                         {{t + "lora1-diffusers.safetensors", 0.7f}, {t + "lora2-bfl.safetensors", 0.4f}},
                         "nvfp4_w4a16_lora1_0p7_lora2_0p4"});
    }
    return cases;
}

INSTANTIATE_TEST_SUITE_P(AllFormats, LoraGolden, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<LoraGolden::ParamType>& info) {
                             const std::string& b = info.param.base;
                             std::string n =
                                 info.param.model + "_" + b.substr(0, b.find(".safetensors")) + "_" + info.param.key;
                             for (const auto& [f, s] : info.param.loras) {
                                 n += "_" + f.substr(f.find("lora"), f.find(".safetensors") - f.find("lora")) + "_" +
                                      std::to_string(static_cast<int>(s * 10));
                             }
                             for (char& ch : n)
                                 if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                             return n;
                         });

// The kohya file with every "lora_unet_<a_b_c>" renamed "diffusion_model.<a.b.c>" (what ComfyUI reads and diffusers
// ignores): the same math as the kohya file.
std::string write_bfl_kohya_spelling(const test::TempDir& dir, const std::string& m) {
    auto kohya = SafetensorsFile::open(lora_path("tiny-" + m + "-lora1-kohya.safetensors"));
    auto bfl = SafetensorsFile::open(lora_path("tiny-" + m + "-lora1-bfl.safetensors"));
    SafetensorsWriter w;
    for (const TensorInfo& t : kohya->tensors()) {
        // The layer's BFL name is that of the bfl file's tensor with the same data layout; find it by stem.
        std::string stem = t.name.substr(10, t.name.find('.') - 10);  // after "lora_unet_"
        std::string bfl_layer;
        for (const TensorInfo& b : bfl->tensors()) {
            std::string layer = b.name.substr(16, b.name.find(".lora_") - 16);  // after "diffusion_model."
            std::string underscored = layer;
            for (char& ch : underscored)
                if (ch == '.') ch = '_';
            if (underscored == stem) bfl_layer = layer;
        }
        EXPECT_FALSE(bfl_layer.empty()) << t.name;
        w.add("diffusion_model." + bfl_layer + t.name.substr(t.name.find('.')), t.dtype, t.shape, t.data, t.nbytes);
    }
    const std::string path = dir.file("tiny-" + m + "-lora1-bfl-kohya.safetensors");
    w.write(path);
    return path;
}

TEST(LoraGolden, BflNamesWithKohyaSpelling) {
    test::TempDir dir;
    for (std::string m : {"dev", "klein"}) {
        auto backend = make_backend(BackendOptions{});
        Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-" + m + "-bf16.safetensors"), *backend);
        LoraRegistry registry;
        auto adapter = registry.load("l", write_bfl_kohya_spelling(dir, m));
        EXPECT_EQ(adapter->format_label(), "bfl-kohya");
        registry.set_active(model, {{"l", 1.0f}});
        EXPECT_LE(max_error(model, m, "lora1_1p0"), 1e-5) << m;
    }
}

// Every layer's branch scale * B (A x), rows in BFL order, against PEFT's loaded layers (probe.loraI.<BFL layer>):
// this reaches the layers that barely show in the output (text stream of the last block, modulation).
TEST(LoraGolden, EveryLayerBranchMatchesPeft) {
    for (std::string m : {"dev", "klein"}) {
        auto golden = SafetensorsFile::open(lora_path("tiny-" + m + "-lora-golden.safetensors"));
        for (std::string f :
             {"lora1-diffusers", "lora1-bfl", "lora1-peft-bfl", "lora1-kohya", "lora2-diffusers", "lora2-bfl"}) {
            const std::string file = "tiny-" + m + "-" + f + ".safetensors";
            const std::string probe = "probe." + f.substr(0, 5) + ".";
            LoraAdapter adapter = read_lora(lora_path(file));
            size_t checked = 0;
            for (const TensorInfo& ref : golden->tensors()) {
                if (ref.name.rfind(probe, 0) != 0) continue;
                // The modules of the BFL layer, in row order, as the reader maps a BFL key.
                const std::string layer = ref.name.substr(probe.size());
                std::optional<LoraKey> key = parse_lora_key(file, "diffusion_model." + layer + ".lora_A.weight");
                ASSERT_TRUE(key.has_value()) << layer;
                std::vector<float> got;  // [2, out], assembled row block by row block
                std::vector<std::vector<float>> parts;
                for (const std::string& module : key->modules) {
                    auto t = std::find_if(adapter.terms.begin(), adapter.terms.end(),
                                          [&](const LoraTerm& t) { return t.module == module; });
                    ASSERT_NE(t, adapter.terms.end()) << file << " " << module;
                    const std::vector<float> x =
                        read_f32(test::golden_tensor(*golden, "probe.in." + std::to_string(t->in_features)));
                    std::vector<float> y(2 * t->out_features);
                    for (int s = 0; s < 2; ++s) {
                        for (int64_t o = 0; o < t->out_features; ++o) {
                            double acc = 0;
                            for (int64_t r = 0; r < t->rank; ++r) {
                                double ax = 0;
                                for (int64_t i = 0; i < t->in_features; ++i)
                                    ax += double((*t->a)[r * t->in_features + i]) * x[s * t->in_features + i];
                                acc += double(t->b[o * t->rank + r]) * ax;
                            }
                            y[s * t->out_features + o] = static_cast<float>(t->scale * acc);
                        }
                    }
                    parts.push_back(std::move(y));
                }
                for (int s = 0; s < 2; ++s) {
                    for (const auto& y : parts) {
                        const size_t rows = y.size() / 2;
                        got.insert(got.end(), y.begin() + s * rows, y.begin() + (s + 1) * rows);
                    }
                }
                EXPECT_LE(test::rel_error(got, read_f32(ref)), 1e-5) << file << " " << layer;
                ++checked;
            }
            EXPECT_GE(checked, m == "dev" ? 25u : 16u) << file;
        }
    }
}

// Switching adapters on one loaded model: on, another, several, off; the base output comes back exactly.
TEST(LoraGolden, SwitchesWithoutReload) {
    auto backend = make_backend(BackendOptions{});
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-dev-bf16.safetensors"), *backend);
    LoraRegistry registry;
    registry.load("lora1", lora_path("tiny-dev-lora1-kohya.safetensors"));
    registry.load("lora2", lora_path("tiny-dev-lora2-diffusers.safetensors"));
    EXPECT_LE(max_error(model, "dev", "base"), 1e-5);
    registry.set_active(model, {{"lora1", 1.0f}});
    EXPECT_LE(max_error(model, "dev", "lora1_1p0"), 1e-5);
    registry.set_active(model, {{"lora2", 1.0f}});
    EXPECT_LE(max_error(model, "dev", "lora2_1p0"), 1e-5);
    registry.set_active(model, {{"lora1", 0.7f}, {"lora2", 0.4f}});
    EXPECT_LE(max_error(model, "dev", "lora1_0p7_lora2_0p4"), 1e-5);
    registry.set_active(model, {});
    EXPECT_LE(max_error(model, "dev", "base"), 1e-5);
    EXPECT_TRUE(model.loras().empty());
}

}  // namespace
}  // namespace flux2
