// Flux2Config from a bare transformer file: sizes from tensor shapes (the MLP width never through a float ratio),
// a pruned file without single or double blocks, config.json beside the file, and messages that use the file's own
// tensor names.
#include "models/flux2/flux2_config.h"

#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <map>
#include <random>

#include "backend/backend.h"
#include "models/flux2/flux2_synthetic.h"
#include "models/flux2/flux2_transformer.h"
#include "models/transformer_checkpoint.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

// The tensors Flux2Config::infer looks at, by internal name, with no data behind them.
class ShapeOnlyWeights : public WeightSource {
public:
    std::map<std::string, Shape> shapes;
    bool has(const std::string& name) const override { return shapes.count(name) != 0; }
    Shape shape_of(const std::string& name) const override {
        auto it = shapes.find(name);
        check(it != shapes.end(), "no tensor ", name);
        return it->second;
    }
    LinearWeight take_linear(const std::string&, int64_t, int64_t) override { fail("not used"); }
    Tensor take_f32(const std::string&, const Shape&) override { fail("not used"); }
    void finish() const override {}
    std::string describe() const override { return "shapes"; }
};

ShapeOnlyWeights model_shapes(int64_t heads, int64_t head_dim, int64_t M, int64_t doubles, int64_t singles) {
    const int64_t D = heads * head_dim;
    ShapeOnlyWeights w;
    w.shapes["x_embedder.weight"] = {D, 128};
    w.shapes["context_embedder.weight"] = {D, 96};
    w.shapes["proj_out.weight"] = {128, D};
    w.shapes["time_guidance_embed.timestep_embedder.linear_1.weight"] = {D, 256};
    for (int64_t i = 0; i < doubles; ++i) {
        w.shapes[str("transformer_blocks.", i, ".attn.norm_q.weight")] = {head_dim};
        w.shapes[str("transformer_blocks.", i, ".ff.linear_out.weight")] = {D, M};
    }
    for (int64_t i = 0; i < singles; ++i) {
        w.shapes[str("single_transformer_blocks.", i, ".attn.norm_q.weight")] = {head_dim};
        w.shapes[str("single_transformer_blocks.", i, ".attn.to_out.weight")] = {D, D + M};
    }
    return w;
}

TEST(Flux2ConfigInfer, MlpWidthComesFromTheShapesForRandomSizes) {
    // (heads, head dim, M); the pairs of the issue first (D 432, M 1885; D 120, M 123), where
    // D * ((D + M - D) / D) truncates to M - 1.
    std::vector<std::array<int64_t, 3>> cases = {{9, 48, 1885}, {3, 40, 123}};
    std::mt19937 rng(15);
    for (int i = 0; i < 2000; ++i) {
        const int64_t head_dim = 8 * std::uniform_int_distribution<int64_t>(1, 24)(rng);
        const int64_t heads = std::uniform_int_distribution<int64_t>(1, 24)(rng);
        cases.push_back({heads, head_dim, std::uniform_int_distribution<int64_t>(1, 8 * heads * head_dim)(rng)});
    }
    for (const auto& [heads, head_dim, M] : cases) {
        const Flux2Config c = Flux2Config::infer(model_shapes(heads, head_dim, M, 1, 2));
        ASSERT_EQ(c.mlp_hidden(), M) << "D " << heads * head_dim << ", M " << M;
        ASSERT_EQ(c.inner_dim(), heads * head_dim);
        // Without single blocks the width comes from the double blocks' MLP.
        ASSERT_EQ(Flux2Config::infer(model_shapes(heads, head_dim, M, 2, 0)).mlp_hidden(), M);
    }
}

TEST(Flux2ConfigInfer, CountsPrunedBlockLists) {
    const Flux2Config no_single = Flux2Config::infer(model_shapes(2, 64, 384, 3, 0));
    EXPECT_EQ(no_single.num_layers, 3);
    EXPECT_EQ(no_single.num_single_layers, 0);
    EXPECT_EQ(no_single.attention_head_dim, 64);
    const Flux2Config no_double = Flux2Config::infer(model_shapes(2, 64, 384, 0, 2));
    EXPECT_EQ(no_double.num_layers, 0);
    EXPECT_EQ(no_double.num_single_layers, 2);
}

Flux2Config small_config(int64_t doubles, int64_t singles) {
    Flux2Config c;
    c.num_layers = doubles;
    c.num_single_layers = singles;
    c.attention_head_dim = 64;
    c.num_attention_heads = 2;
    c.axes_dims_rope = {16, 16, 16, 16};
    c.joint_attention_dim = 64;
    c.guidance_embeds = false;
    return c;
}

Flux2Transformer load_cpu(const std::string& path, Backend& backend) { return Flux2Transformer::load(path, backend); }

TEST(Flux2ConfigFile, OddMlpWidthLoads) {
    // D 448, M 976: int(448 * (976 / 448.0)) is 975, so a width taken through the ratio misses the tensors.
    test::TempDir dir;
    Flux2Config c = small_config(1, 1);
    c.num_attention_heads = 7;
    c.mlp_hidden_dim = 976;
    write_synthetic_transformer(dir.file("odd.safetensors"), c, 1);
    auto backend = make_backend({});
    const Flux2Transformer model = load_cpu(dir.file("odd.safetensors"), *backend);
    EXPECT_EQ(model.config().mlp_hidden(), 976);
}

TEST(Flux2ConfigFile, BareFileWithoutSingleBlocksLoads) {
    test::TempDir dir;
    write_synthetic_transformer(dir.file("pruned.safetensors"), small_config(2, 0), 1);
    auto backend = make_backend({});
    const Flux2Transformer model = load_cpu(dir.file("pruned.safetensors"), *backend);
    EXPECT_EQ(model.config().num_layers, 2);
    EXPECT_EQ(model.config().num_single_layers, 0);
}

TEST(Flux2ConfigFile, MissingTensorIsNamedAsTheFileSpellsIt) {
    // No blocks at all: the message names BFL's key for the tensor the sizes are read from, not the internal one.
    test::TempDir dir;
    write_synthetic_transformer(dir.file("empty.safetensors"), small_config(0, 0), 1);
    const TransformerCheckpoint ckpt = TransformerCheckpoint::open(dir.file("empty.safetensors"));
    test::expect_error([&] { Flux2Config::for_checkpoint(ckpt); }, {"no tensor single_blocks.0.norm.query_norm.scale"});
    EXPECT_EQ(ckpt.checkpoint_name("transformer_blocks.1.attn.add_k_proj.weight"),
              "double_blocks.1.txt_attn.qkv.weight (K rows)");
    EXPECT_EQ(ckpt.checkpoint_name("single_transformer_blocks.3.attn.norm_k.weight"),
              "single_blocks.3.norm.key_norm.scale");
    // A diffusers file keeps the diffusers names.
    const TransformerCheckpoint diffusers = TransformerCheckpoint::open(test::data_path("tiny-klein-diffusers"));
    EXPECT_EQ(diffusers.checkpoint_name("transformer_blocks.1.attn.add_k_proj.weight"),
              "transformer_blocks.1.attn.add_k_proj.weight");
}

void write_config(const std::string& path, const nlohmann::json& j) { std::ofstream(path) << j.dump(1); }

nlohmann::json config_json(const Flux2Config& c) {
    return {{"_class_name", "Flux2Transformer2DModel"},
            {"num_layers", c.num_layers},
            {"num_single_layers", c.num_single_layers},
            {"attention_head_dim", c.attention_head_dim},
            {"num_attention_heads", c.num_attention_heads},
            {"joint_attention_dim", c.joint_attention_dim},
            {"guidance_embeds", false},
            {"axes_dims_rope", {8, 24, 24, 8}},
            {"rope_theta", 10000},
            {"eps", 1e-5}};
}

TEST(Flux2ConfigFile, ConfigJsonBesideABareFileIsRead) {
    test::TempDir dir;
    const Flux2Config c = small_config(1, 1);
    write_synthetic_transformer(dir.file("model.safetensors"), c, 1);
    const Flux2Config defaults =
        Flux2Config::for_checkpoint(TransformerCheckpoint::open(dir.file("model.safetensors")));
    EXPECT_EQ(defaults.rope_theta, 2000.0);

    write_config(dir.file("config.json"), config_json(c));
    const Flux2Config read = Flux2Config::for_checkpoint(TransformerCheckpoint::open(dir.file("model.safetensors")));
    EXPECT_EQ(read.rope_theta, 10000.0);
    EXPECT_EQ(read.axes_dims_rope, (std::array<int64_t, 4>{8, 24, 24, 8}));
    EXPECT_FLOAT_EQ(read.eps, 1e-5f);
    const std::string summary = read.summary();
    EXPECT_NE(summary.find("RoPE axes 8/24/24/8 theta 10000, eps 1e-05"), std::string::npos) << summary;

    // Its errors name it.
    nlohmann::json bad = config_json(c);
    bad["axes_dims_rope"] = {8, 8, 8, 8};
    write_config(dir.file("config.json"), bad);
    test::expect_error([&] { Flux2Config::for_checkpoint(TransformerCheckpoint::open(dir.file("model.safetensors"))); },
                       {dir.file("config.json") + ": axes_dims_rope sum to 32 but attention_head_dim is 64"});

    // Another model's config.json in the same folder is not taken for the transformer's.
    write_config(dir.file("config.json"), {{"_class_name", "AutoencoderKLFlux2"}, {"rope_theta", 1}});
    EXPECT_EQ(Flux2Config::for_checkpoint(TransformerCheckpoint::open(dir.file("model.safetensors"))).rope_theta,
              2000.0);
}

TEST(Flux2ConfigFile, ConfigJsonThatDisagreesWithTheTensorsIsWarnedAbout) {
    test::TempDir dir;
    const Flux2Config c = small_config(1, 1);
    write_synthetic_transformer(dir.file("model.safetensors"), c, 1);
    nlohmann::json j = config_json(c);
    j["num_layers"] = 3;
    write_config(dir.file("config.json"), j);
    testing::internal::CaptureStderr();
    Flux2Config::for_checkpoint(TransformerCheckpoint::open(dir.file("model.safetensors")));
    const std::string err = testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("does not match the tensors"), std::string::npos) << err;
    EXPECT_NE(err.find("num_layers 3 vs 1"), std::string::npos) << err;
}

}  // namespace
}  // namespace flux2
