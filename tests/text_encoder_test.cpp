// The Qwen3 / Mistral text encoder (models/text_encoder/) against transformers 5.17 (text-encoder-golden), its
// checkpoint layouts (hub Mistral3, new Mistral3, ComfyUI bare prefix, pruned), quantized linears (NVFP4, FP8)
// and the backend ops it added (rope_half, causal_attention).
#include "models/text_encoder/text_encoder.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>

#include "backend/backend.h"
#include "core/error.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/recording_random_weights.h"
#include "models/text_encoder/decoder_checkpoint.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"
#include "quant/nvfp4_quantizer.h"
#include "temp_dir.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace flux2 {
namespace {

const std::string kGolden = "text-encoder-golden.safetensors";

// The golden models went through model.to(torch.bfloat16), which also rounded RoPE's inv_freq (text_encoder.h).
TextEncoderOptions golden_options() {
    TextEncoderOptions o;
    o.bf16_rope_frequencies = true;
    return o;
}

void expect_matches(const Tensor& out, const SafetensorsFile& g, const std::string& key, double tolerance) {
    const TensorInfo* ref = g.find(key);
    ASSERT_NE(ref, nullptr) << key;
    ASSERT_EQ(out.shape(), ref->shape) << key;
    EXPECT_LE(test::rel_error(out.to_vector(), read_f32(*ref)), tolerance) << key;
}

// Copies every tensor of `src` under the name rename() returns (nullopt drops it); `extra` may add more.
void rewrite(const std::string& src, const fs::path& dst,
             const std::function<std::optional<std::string>(const std::string&)>& rename,
             const std::function<void(SafetensorsWriter&)>& extra = nullptr) {
    auto file = SafetensorsFile::open(src);
    SafetensorsWriter w;
    for (const TensorInfo& t : file->tensors())
        if (auto name = rename(t.name)) w.add(*name, t.dtype, t.shape, t.data, t.nbytes);
    if (extra) extra(w);
    w.write(dst.string());
}

nlohmann::json read_json(const fs::path& p) {
    std::ifstream in(p);
    return nlohmann::json::parse(in);
}

void write_json(const fs::path& p, const nlohmann::json& j) { std::ofstream(p) << j.dump(2); }

Tensor encode(const std::string& path, const std::vector<int64_t>& layers, const TokenBatch& tokens, Backend& backend,
              const TextEncoderOptions& options = golden_options()) {
    return TextEncoder::load(path, layers, backend, options).encode(tokens);
}

// ---- golden: transformers 5.17, fp32 ----

class TextEncoderGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(TextEncoderGolden, EveryHiddenStateMatchesTransformers) {
    const std::string family = GetParam();
    auto backend = make_backend({});
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    Tensor e = encode(test::data_path("tiny-" + family), {0, 1, 2, 3, 4}, test::golden_tokens(*g, family), *backend);
    ASSERT_EQ(e.ndim(), 3);
    const int64_t rows = e.dim(0) * e.dim(1), D = e.dim(2) / 5;
    // Includes the padded positions (Qwen3 right, Mistral left with fully masked query rows) and, for k = 4, the
    // final norm transformers applies to its last entry.
    for (int64_t k = 0; k < 5; ++k) {
        Tensor h = Tensor::zeros({e.dim(0), e.dim(1), D});
        for (int64_t r = 0; r < rows; ++r) std::copy_n(e.f32() + (r * 5 + k) * D, D, h.f32() + r * D);
        expect_matches(h, *g, str(family, ".hidden_states.", k), 1e-5);
    }
}

TEST_P(TextEncoderGolden, PromptEmbedsStackLayersPerToken) {
    const std::string family = GetParam();
    auto backend = make_backend({});
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    Tensor e = encode(test::data_path("tiny-" + family), {1, 2, 3}, test::golden_tokens(*g, family), *backend);
    expect_matches(e, *g, family + ".prompt_embeds_layers_1_2_3", 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Families, TextEncoderGolden, ::testing::Values("qwen3", "mistral"));

TEST(TextEncoderGolden, Fp32RopeFrequenciesAreTheDefaultAndMeasurablyDifferent) {
    // The default keeps inv_freq in fp32 as from_pretrained does; on the tiny Qwen3 (theta 1e6, 32 positions)
    // that moves the output by ~1e-4 from the bf16-frequency golden. Guards both the option and the default.
    auto backend = make_backend({});
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
    Tensor e = encode(test::data_path("tiny-qwen3"), {1, 2, 3}, tokens, *backend, TextEncoderOptions{});
    const double err = test::rel_error(e.to_vector(), read_f32(*g->find("qwen3.prompt_embeds_layers_1_2_3")));
    EXPECT_GT(err, 1e-5);
    EXPECT_LT(err, 1e-3);
}

TEST(TextEncoderGolden, LeftPaddedRowsReallyHaveFullyMaskedQueries) {
    // Guards the premise of the masked-row test above: the Mistral batch's row 1 starts with padding.
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    TokenBatch t = test::golden_tokens(*g, "mistral");
    EXPECT_EQ(t.attention_mask[t.length], 0);
    EXPECT_EQ(t.attention_mask[2 * t.length - 1], 1);
}

// ---- checkpoint layouts ----

TEST(TextEncoderLayouts, Mistral3PrefixesAndComfyUiSingleFile) {
    auto backend = make_backend({});
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    const TokenBatch tokens = test::golden_tokens(*g, "mistral");
    const std::string src = test::data_path("tiny-mistral/model.safetensors");
    const nlohmann::json text_config = read_json(test::data_path("tiny-mistral/config.json"));
    const std::string old_prefix = "language_model.model.";
    for (const std::string prefix : {"model.language_model.", "model."}) {
        test::TempDir dir;
        rewrite(
            src, dir.path() / "model.safetensors",
            [&](const std::string& n) -> std::optional<std::string> {
                if (n.starts_with(old_prefix)) return prefix + n.substr(old_prefix.size());
                if (n == "language_model.lm_head.weight") return "lm_head.weight";
                return n;
            },
            [](SafetensorsWriter& w) {  // siblings a text encoder must skip
                const float v[4] = {1, 2, 3, 4};
                w.add_f32("model.vision_tower.patch_conv.weight", {2, 2}, v);
                w.add_f32("model.multi_modal_projector.linear_1.weight", {2, 2}, v);
                const uint8_t tok[3] = {1, 2, 3};
                w.add("tekken_model", DType::U8, {3}, tok, 3);
            });
        // Mistral3ForConditionalGeneration's config nests the language model under text_config.
        write_json(dir.path() / "config.json",
                   {{"model_type", "mistral3"}, {"text_config", text_config}, {"vision_config", {{"hidden_size", 8}}}});
        Tensor e = encode(dir.path().string(), {1, 2, 3}, tokens, *backend);
        expect_matches(e, *g, "mistral.prompt_embeds_layers_1_2_3", 1e-5);
        // A single file names its config.json by sitting beside it.
        Tensor f = encode((dir.path() / "model.safetensors").string(), {1, 2, 3}, tokens, *backend);
        expect_matches(f, *g, "mistral.prompt_embeds_layers_1_2_3", 1e-5);
    }
}

TEST(TextEncoderLayouts, PrunedCheckpointServesLayersItHas) {
    // Like ComfyUI's 30-of-40-layer Mistral: layer 3 and the final norm are gone.
    auto backend = make_backend({});
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
    test::TempDir dir;
    fs::copy(test::data_path("tiny-qwen3/config.json"), dir.path() / "config.json");
    rewrite(test::data_path("tiny-qwen3/model.safetensors"), dir.path() / "model.safetensors",
            [](const std::string& n) -> std::optional<std::string> {
                if (n.starts_with("model.layers.3.") || n == "model.norm.weight") return std::nullopt;
                return n;
            });
    Tensor e = encode(dir.path().string(), {1, 2, 3}, tokens, *backend);
    expect_matches(e, *g, "qwen3.prompt_embeds_layers_1_2_3", 1e-5);
    test::expect_error([&] { encode(dir.path().string(), {4}, tokens, *backend); }, {"model.layers.3."});
}

TEST(TextEncoderLayouts, ForeignTensorsAndMissingConfigAreErrors) {
    auto backend = make_backend({});
    const std::string src = test::data_path("tiny-qwen3/model.safetensors");
    {
        test::TempDir dir;
        fs::copy(test::data_path("tiny-qwen3/config.json"), dir.path() / "config.json");
        rewrite(
            src, dir.path() / "model.safetensors", [](const std::string& n) { return n; },
            [](SafetensorsWriter& w) {
                const float bias[16] = {};
                w.add_f32("model.layers.0.self_attn.q_proj.bias", {16}, bias);
            });
        test::expect_error([&] { TextEncoder::load(dir.path().string(), {1}, *backend); }, {"q_proj.bias"});
    }
    {
        test::TempDir dir;
        rewrite(src, dir.path() / "model.safetensors", [](const std::string& n) { return n; });
        test::expect_error([&] { TextEncoder::load(dir.path().string(), {1}, *backend); }, {"config.json"});
    }
}

TEST(TextEncoderLayouts, RandomWeightsWriteALoadableCheckpoint) {
    // The model's own weight declarations, fed from RecordingRandomWeights, give a file DecoderCheckpoint reads back.
    auto backend = make_backend({});
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
    const DecoderConfig config =
        DecoderConfig::from_json(read_json(test::data_path("tiny-qwen3/config.json")), "tiny-qwen3");
    RecordingRandomWeights random(42);
    Tensor a = TextEncoder::load(random, config, {1, 2, 3}, *backend).encode(tokens);
    test::TempDir dir;
    random.write(dir.file("model.safetensors"));
    fs::copy(test::data_path("tiny-qwen3/config.json"), dir.path() / "config.json");
    Tensor b = encode(dir.path().string(), {1, 2, 3}, tokens, *backend, TextEncoderOptions{});
    EXPECT_LE(test::rel_error(b.to_vector(), a.to_vector()), 1e-7);
}

TEST(TextEncoderLayouts, RejectsBadTokens) {
    auto backend = make_backend({});
    TextEncoder te = TextEncoder::load(test::data_path("tiny-mistral"), {1}, *backend);
    TokenBatch t{1, 2, {5, 1000}, {1, 1}};
    EXPECT_THROW(te.encode(t), Error);  // vocabulary is 1000
    t = {1, 2, {5, 6}, {1, 2}};
    EXPECT_THROW(te.encode(t), Error);
    t = {1, 2, {5}, {1, 1}};
    EXPECT_THROW(te.encode(t), Error);
    EXPECT_THROW(TextEncoder::load(test::data_path("tiny-mistral"), {5}, *backend), Error);
}

// ---- quantized linears ----

enum class Quant { nvfp4, fp8 };

bool is_linear(const TensorInfo& t) {
    return t.name.starts_with("model.layers.") && t.name.ends_with("_proj.weight") && t.shape.size() == 2;
}

// Writes the tiny Qwen3 with every decoder linear quantized (to `quant_dir`) and the same model with those
// linears stored as their exact dequantized F32 values (to `dequant_dir`).
void write_quantized_qwen3(Quant q, const fs::path& quant_dir, const fs::path& dequant_dir) {
    auto file = SafetensorsFile::open(test::data_path("tiny-qwen3/model.safetensors"));
    SafetensorsWriter wq, wd;
    nlohmann::json layers = nlohmann::json::object();
    int n = 0;
    for (const TensorInfo& t : file->tensors()) {
        if (!is_linear(t)) {
            wq.add(t.name, t.dtype, t.shape, t.data, t.nbytes);
            wd.add(t.name, t.dtype, t.shape, t.data, t.nbytes);
            continue;
        }
        const std::string module = t.name.substr(0, t.name.size() - std::string(".weight").size());
        const int64_t out = t.shape[0], in = t.shape[1];
        const std::vector<float> w = read_f32(t);
        LinearWeight lw;
        lw.name = module;
        lw.out_features = out;
        lw.in_features = in;
        if (q == Quant::nvfp4) {
            lw.format = WeightFormat::nvfp4;
            lw.nvfp4 = quantize_nvfp4_weight(w.data(), out, in);
            const std::vector<uint8_t> swizzled = swizzle_scales(lw.nvfp4.scales.data(), out, in / kNvfp4Block);
            wq.add(module + ".weight", DType::U8, {out, in / 2}, lw.nvfp4.codes.data(), lw.nvfp4.codes.size());
            wq.add(module + ".weight_scale", DType::F8_E4M3, {round_up(out, 128), round_up(in / kNvfp4Block, 4)},
                   swizzled.data(), swizzled.size());
            wq.add_f32(module + ".weight_scale_2", {}, &lw.nvfp4.weight_scale_2);
            layers[module] = {{"format", "nvfp4"}};
        } else {
            float amax = 0;
            for (float v : w) amax = std::max(amax, std::fabs(v));
            lw.format = WeightFormat::fp8;
            lw.fp8.scale = amax / kE4m3Max;
            for (float v : w) lw.fp8.codes.push_back(f32_to_e4m3(v / lw.fp8.scale));
            wq.add(module + ".weight", DType::F8_E4M3, {out, in}, lw.fp8.codes.data(), lw.fp8.codes.size());
            // Both ComfyUI spellings of the scale, and the per-layer marker ComfyUI writes.
            wq.add_f32(module + (n % 2 ? ".scale_weight" : ".weight_scale"), {}, &lw.fp8.scale);
            const std::string marker = R"({"format":"float8_e4m3fn"})";
            wq.add(module + ".comfy_quant", DType::U8, {static_cast<int64_t>(marker.size())}, marker.data(),
                   marker.size());
        }
        wd.add_f32(t.name, t.shape, dequantize(lw).data());
        ++n;
    }
    EXPECT_EQ(n, 4 * 7);
    if (q == Quant::nvfp4)
        wq.set_metadata("_quantization_metadata", nlohmann::json{{"format_version", "1.0"}, {"layers", layers}}.dump());
    for (const fs::path& d : {quant_dir, dequant_dir}) {
        fs::create_directories(d);
        fs::copy(test::data_path("tiny-qwen3/config.json"), d / "config.json");
    }
    wq.write((quant_dir / "model.safetensors").string());
    wd.write((dequant_dir / "model.safetensors").string());
}

class TextEncoderQuant : public ::testing::TestWithParam<Quant> {};

TEST_P(TextEncoderQuant, RunsThroughQuantizedLinearsExactlyAsDequantized) {
    const Quant q = GetParam();
    test::TempDir dir;
    write_quantized_qwen3(q, dir.path() / "quant", dir.path() / "dequant");
    auto backend = make_backend({});
    auto g = SafetensorsFile::open(test::data_path(kGolden));
    const TokenBatch tokens = test::golden_tokens(*g, "qwen3");

    backend->reset_path_counts();
    Tensor quantized = encode((dir.path() / "quant").string(), {1, 2, 3}, tokens, *backend);
    const std::string paths = backend->path_summary();
    EXPECT_NE(paths.find(q == Quant::nvfp4 ? "nvfp4->w4a16" : "fp8->w8a16"), std::string::npos) << paths;
    EXPECT_EQ(paths.find("bf16"), std::string::npos) << paths;  // every decoder linear took the quantized path
    Tensor reference = encode((dir.path() / "dequant").string(), {1, 2, 3}, tokens, *backend);
    EXPECT_LE(test::rel_error(quantized.to_vector(), reference.to_vector()), 1e-6);

    // And it is still the same model: close to the bf16 golden (a 16-wide model quantizes coarsely).
    const double err = test::rel_error(quantized.to_vector(), read_f32(*g->find("qwen3.prompt_embeds_layers_1_2_3")));
    EXPECT_LE(err, q == Quant::nvfp4 ? 0.08 : 0.03) << "relative error vs bf16";
    EXPECT_GT(err, 1e-5) << "quantization changed nothing: the quantized files were not used";
}

INSTANTIATE_TEST_SUITE_P(Formats, TextEncoderQuant, ::testing::Values(Quant::nvfp4, Quant::fp8),
                         [](const ::testing::TestParamInfo<Quant>& info) {
                             return info.param == Quant::nvfp4 ? "nvfp4" : "fp8";
                         });

TEST(TextEncoderQuantMarkers, DeclaredFormatMustMatchTheTensors) {
    test::TempDir dir;
    write_quantized_qwen3(Quant::fp8, dir.path() / "quant", dir.path() / "dequant");
    // Re-declare one FP8 layer as NVFP4 through the header.
    SafetensorsWriter w;
    auto file = SafetensorsFile::open((dir.path() / "quant/model.safetensors").string());
    for (const TensorInfo& t : file->tensors())
        if (!t.name.ends_with(".comfy_quant")) w.add(t.name, t.dtype, t.shape, t.data, t.nbytes);
    w.set_metadata("_quantization_metadata",
                   R"({"format_version":"1.0","layers":{"model.layers.0.mlp.up_proj":{"format":"nvfp4"}}})");
    w.write((dir.path() / "quant/model.safetensors").string());
    auto backend = make_backend({});
    test::expect_error([&] { TextEncoder::load((dir.path() / "quant").string(), {1}, *backend); },
                       {"model.layers.0.mlp.up_proj", "nvfp4", "fp8"});
}

// ---- config ----

TEST(DecoderConfigTest, ReadsRopeThetaFromEitherPlace) {
    nlohmann::json j = read_json(test::data_path("tiny-qwen3/config.json"));
    DecoderConfig a = DecoderConfig::from_json(j, "tiny-qwen3");
    EXPECT_EQ(a.family, DecoderFamily::qwen3);
    EXPECT_EQ(a.rope_theta, 1e6);
    EXPECT_EQ(a.head_dim, 8);
    EXPECT_EQ(a.num_key_value_heads, 1);
    EXPECT_FLOAT_EQ(a.rms_norm_eps, 1e-6);
    j.erase("rope_parameters");
    j["rope_theta"] = 5e5;
    EXPECT_EQ(DecoderConfig::from_json(j, "top-level").rope_theta, 5e5);
    j.erase("rope_theta");
    EXPECT_THROW(DecoderConfig::from_json(j, "no theta"), Error);
}

TEST(DecoderConfigTest, HeadDimDefaultsAndRefusals) {
    nlohmann::json j = read_json(test::data_path("tiny-mistral/config.json"));
    EXPECT_EQ(DecoderConfig::from_json(j, "m").family, DecoderFamily::mistral);
    j.erase("head_dim");
    EXPECT_EQ(DecoderConfig::from_json(j, "m").head_dim, 32 / 4);  // hidden / heads
    for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
             {"sliding_window", 4096},
             {"attention_bias", true},
             {"hidden_act", "gelu"},
             {"model_type", "llama4"},
             {"num_key_value_heads", 3},
             {"rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1e9}}}}) {
        nlohmann::json bad = j;
        bad[key] = value;
        EXPECT_THROW(DecoderConfig::from_json(bad, key), Error) << key;
    }
}

TEST(DecoderConfigTest, PresetsOfTheShippedEncoders) {
    DecoderConfig m = DecoderConfig::preset("mistral-small-3");
    EXPECT_EQ(m.q_dim(), 4096);
    EXPECT_EQ(m.kv_dim(), 1024);
    EXPECT_FALSE(m.qk_norm());
    EXPECT_EQ(DecoderConfig::preset("qwen3-4b").hidden_size, 2560);
    EXPECT_TRUE(DecoderConfig::preset("qwen3-8b").qk_norm());
    EXPECT_THROW(DecoderConfig::preset("qwen2"), Error);
}

// ---- backend ops ----

Tensor random_tensor(const Shape& shape, std::mt19937& rng) {
    std::normal_distribution<float> nd;
    std::vector<float> v(shape_numel(shape));
    for (float& x : v) x = nd(rng);
    return Tensor::from_f32(shape, std::move(v));
}

TEST(TextEncoderOps, CausalAttentionMatchesNaiveGqaWithPadding) {
    std::mt19937 rng(7);
    const int64_t B = 2, L = 7, H = 4, Hkv = 2, Dh = 8;
    Tensor q = random_tensor({B, L, H, Dh}, rng), k = random_tensor({B, L, Hkv, Dh}, rng);
    Tensor v = random_tensor({B, L, Hkv, Dh}, rng);
    // Row 0 right-padded by 2, row 1 left-padded by 3 (its first 3 queries see no key at all).
    std::vector<float> mask = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    auto backend = make_backend({});
    Tensor out = backend->causal_attention(q, k, v, Tensor::from_f32({B, L}, mask));
    ASSERT_EQ(out.shape(), (Shape{B, L, H * Dh}));
    std::vector<float> ref(B * L * H * Dh, 0.0f);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < L; ++i) {
                const int64_t g = h / (H / Hkv);
                std::vector<double> p(L, 0.0);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j <= i; ++j) {
                    if (mask[b * L + j] == 0) continue;
                    double s = 0;
                    for (int64_t d = 0; d < Dh; ++d)
                        s +=
                            double(q.f32()[((b * L + i) * H + h) * Dh + d]) * k.f32()[((b * L + j) * Hkv + g) * Dh + d];
                    p[j] = s / std::sqrt(double(Dh));
                    mx = std::max(mx, p[j]);
                }
                if (mx == -INFINITY) continue;  // fully masked: zeros
                for (int64_t j = 0; j <= i; ++j) {
                    p[j] = mask[b * L + j] == 0 ? 0.0 : std::exp(p[j] - mx);
                    sum += p[j];
                }
                for (int64_t d = 0; d < Dh; ++d) {
                    double o = 0;
                    for (int64_t j = 0; j <= i; ++j) o += p[j] / sum * v.f32()[((b * L + j) * Hkv + g) * Dh + d];
                    ref[((b * L + i) * H + h) * Dh + d] = static_cast<float>(o);
                }
            }
    EXPECT_LE(test::rel_error(out.to_vector(), ref), 1e-6);
    for (int64_t i = 0; i < 3; ++i)
        for (int64_t c = 0; c < H * Dh; ++c) EXPECT_EQ(out.f32()[(L + i) * H * Dh + c], 0.0f);
}

TEST(TextEncoderOps, RopeHalfRotatesHalvesAndTakesPerSampleTables) {
    std::mt19937 rng(3);
    const int64_t B = 2, L = 3, H = 2, Dh = 4;
    Tensor x = random_tensor({B, L, H, Dh}, rng);
    Tensor c = random_tensor({L, Dh}, rng), s = random_tensor({L, Dh}, rng);
    auto backend = make_backend({});
    Tensor y = backend->rope_half(x, c, s);
    for (int64_t r = 0; r < B * L * H; ++r) {
        const int64_t l = (r / H) % L;
        const float* xv = x.f32() + r * Dh;
        const float *cv = c.f32() + l * Dh, *sv = s.f32() + l * Dh;
        const float expect[4] = {xv[0] * cv[0] - xv[2] * sv[0], xv[1] * cv[1] - xv[3] * sv[1],
                                 xv[2] * cv[2] + xv[0] * sv[2], xv[3] * cv[3] + xv[1] * sv[3]};
        for (int d = 0; d < 4; ++d) EXPECT_FLOAT_EQ(y.f32()[r * Dh + d], expect[d]);
    }
    // [B, L, Dh] tables: sample 1 gets its own angles.
    std::vector<float> cb(B * L * Dh), sb(B * L * Dh);
    for (int64_t i = 0; i < L * Dh; ++i) {
        cb[i] = c.f32()[i];
        sb[i] = s.f32()[i];
        cb[L * Dh + i] = 1.0f;  // identity rotation for sample 1
        sb[L * Dh + i] = 0.0f;
    }
    Tensor yb = backend->rope_half(x, Tensor::from_f32({B, L, Dh}, cb), Tensor::from_f32({B, L, Dh}, sb));
    for (int64_t i = 0; i < L * H * Dh; ++i) {
        EXPECT_EQ(yb.f32()[i], y.f32()[i]);
        EXPECT_EQ(yb.f32()[L * H * Dh + i], x.f32()[L * H * Dh + i]);
    }
    EXPECT_THROW(backend->rope_half(x, Tensor::zeros({L, Dh + 2}), Tensor::zeros({L, Dh + 2})), Error);
}

}  // namespace
}  // namespace flux2
