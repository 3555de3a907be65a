// Attaching LoRAs to a model: a LoRA for another model or naming a layer the model lacks is refused before
// anything changes (the model keeps its adapters), and the --lora FILE[:STRENGTH] spec parsing.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_registry.h"
#include "models/lora/lora_synthetic.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

std::string lora_path(const std::string& file) { return test::data_path("lora/" + file); }

using test::expect_error;

// A LoRA for another model, or one naming a layer the model lacks, is refused before anything changes.
TEST(LoraAttach, RefusesAndKeepsTheModel) {
    auto backend = make_backend(BackendOptions{});
    Flux2Transformer klein = Flux2Transformer::load(test::data_path("tiny-klein-bf16.safetensors"), *backend);
    test::TempDir dir;
    SafetensorsWriter guidance;  // klein-sized (hidden 128), but klein has no guidance embedding
    std::vector<float> a(2 * 256, 0.01f), b(128 * 2, 0.01f);
    guidance.add_f32("diffusion_model.guidance_in.in_layer.lora_A.weight", {2, 256}, a.data());
    guidance.add_f32("diffusion_model.guidance_in.in_layer.lora_B.weight", {128, 2}, b.data());
    guidance.write(dir.file("guidance.safetensors"));
    LoraRegistry registry;
    registry.load("klein", lora_path("tiny-klein-lora1-bfl.safetensors"));
    registry.load("dev1", lora_path("tiny-dev-lora1-kohya.safetensors"));
    registry.load("guidance", dir.file("guidance.safetensors"));
    registry.set_active(klein, {{"klein", 1.0f}});

    // tiny-dev is 64 wide, tiny-klein 128.
    expect_error(
        [&] {
            registry.set_active(klein, {{"dev1", 1.0f}});
        },
        {"tiny-dev-lora1-kohya.safetensors", "lora_unet_double_blocks_0", "the model's layer is [128, 128]"});
    expect_error(
        [&] {
            registry.set_active(klein, {{"klein", 1.0f}, {"guidance", 1.0f}});
        },
        {"guidance.safetensors", "guidance_in.in_layer.lora_A.weight", "guidance_embedder", "does not have"});
    expect_error([&] { registry.set_active(klein, {{"nope", 1.0f}}); }, {"no LoRA named 'nope'", "dev1", "klein"});
    ASSERT_EQ(klein.loras().size(), 1u);
    EXPECT_EQ(klein.loras()[0].name, "klein");

    auto golden = SafetensorsFile::open(lora_path("tiny-klein-lora-golden.safetensors"));
    auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
    Tensor out = klein.forward(test::golden_transformer_inputs(*inputs, "case0.", false));
    EXPECT_LE(test::rel_error(out.to_vector(), read_f32(test::golden_tensor(*golden, "case0.out_lora1_1p0"))), 1e-5);
}

LinearWeight zero_linear(const std::string& name, int64_t out, int64_t in) {
    LinearWeight w;
    w.name = name;
    w.out_features = out;
    w.in_features = in;
    w.dense.dtype = DType::F32;
    w.dense.bytes.assign(static_cast<size_t>(out * in * 4), 0);
    return w;
}

// B A of a branch, [out, in].
std::vector<float> delta(const LoraBranch& l) {
    std::vector<float> d(static_cast<size_t>(l.out_features * l.in_features), 0.0f);
    for (int64_t o = 0; o < l.out_features; ++o)
        for (int64_t r = 0; r < l.rank; ++r)
            for (int64_t i = 0; i < l.in_features; ++i)
                d[o * l.in_features + i] += l.b[o * l.rank + r] * l.a[r * l.in_features + i];
    return d;
}

// A fused BFL qkv LoRA on q, k and v kept as three linears (what happens when their quantization scales differ) and
// on the joined q|k|v linear: the same update as the golden delta, and on the joined linear one rank-8 pair.
TEST(LoraAttach, FusedQkvOnSeparateAndJoinedLinears) {
    auto adapter = std::make_shared<LoraAdapter>(read_lora(lora_path("tiny-dev-lora1-kohya.safetensors")));
    const std::string p = "transformer_blocks.0.attn.";
    std::erase_if(adapter->terms, [&](const LoraTerm& t) {
        return t.module != p + "to_q" && t.module != p + "to_k" && t.module != p + "to_v";
    });
    ASSERT_EQ(adapter->terms.size(), 3u);
    const std::vector<ActiveLora> active{{"lora1", adapter, 1.0f}};
    LinearWeight q = zero_linear(p + "to_q", 64, 64), k = zero_linear(p + "to_k", 64, 64),
                 v = zero_linear(p + "to_v", 64, 64);
    LinearWeight qkv = concat_rows({&q, &k, &v}, p + "to_qkv");

    auto golden = SafetensorsFile::open(lora_path("tiny-dev-lora-golden.safetensors"));
    const std::vector<float> ref = read_f32(test::golden_tensor(*golden, "delta.lora1.double_blocks.0.img_attn.qkv"));
    auto separate = build_lora_branches({&q, &k, &v}, active);
    std::vector<float> joined_rows;
    for (const auto& b : separate) {
        ASSERT_NE(b, nullptr);
        EXPECT_EQ(b->rank, 8);
        const std::vector<float> d = delta(*b);
        joined_rows.insert(joined_rows.end(), d.begin(), d.end());
    }
    EXPECT_LE(test::rel_error(joined_rows, ref), 1e-6);
    auto fused = build_lora_branches({&qkv}, active);
    ASSERT_NE(fused[0], nullptr);
    EXPECT_EQ(fused[0]->rank, 8);
    EXPECT_LE(test::rel_error(delta(*fused[0]), ref), 1e-6);
    // Strength 0 attaches nothing.
    EXPECT_EQ(build_lora_branches({&qkv}, {{"lora1", adapter, 0.0f}})[0], nullptr);
}

// flux2 bench --lora-rank: a branch on every linear, q/k/v sharing A so each fused qkv linear stays rank R.
TEST(LoraAttach, SyntheticLoraReachesEveryLinear) {
    auto backend = make_backend(BackendOptions{});
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-dev-bf16.safetensors"), *backend);
    auto inputs = SafetensorsFile::open(test::data_path("tiny-dev-golden.safetensors"));
    const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case0.", true);
    const std::vector<float> base = model.forward(in).to_vector();
    auto lora = std::make_shared<const LoraAdapter>(synthetic_lora(model.config(), 4, 1));
    model.set_loras({ActiveLora{"synthetic", lora, 1.0f}});
    backend->reset_path_counts();
    const std::vector<float> out = model.forward(in).to_vector();
    EXPECT_EQ(backend->path_summary(), "bf16->f32 + lora r4 x31");
    const double change = test::rel_error(out, base);
    EXPECT_GT(change, 1e-3);
    EXPECT_LT(change, 1.0);  // sized to perturb, not to swamp
}

// flux2 bench times reading the synthetic adapter from a diffusers file: that file must hold the same LoRA (up to
// the BF16 rounding of its values), q/k/v read back as three modules with a copy of the shared A each.
TEST(LoraAttach, SyntheticLoraWrittenAsDiffusersFileReadsBack) {
    auto backend = make_backend(BackendOptions{});
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-dev-bf16.safetensors"), *backend);
    auto inputs = SafetensorsFile::open(test::data_path("tiny-dev-golden.safetensors"));
    const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case0.", true);
    const std::vector<float> base = model.forward(in).to_vector();
    auto lora = std::make_shared<const LoraAdapter>(synthetic_lora(model.config(), 4, 7));
    test::TempDir dir;
    const std::string path = dir.file("synthetic-lora.safetensors");
    write_lora_diffusers(*lora, path);
    auto read = std::make_shared<const LoraAdapter>(read_lora(path));
    EXPECT_EQ(read->format_label(), "diffusers");
    EXPECT_EQ(read->terms.size(), lora->terms.size());
    model.set_loras({ActiveLora{"memory", lora, 1.0f}});
    std::vector<float> want = model.forward(in).to_vector();
    model.set_loras({ActiveLora{"file", read, 1.0f}});
    std::vector<float> got = model.forward(in).to_vector();
    for (size_t i = 0; i < base.size(); ++i) {
        want[i] -= base[i];
        got[i] -= base[i];
    }
    EXPECT_LE(test::rel_error(got, want), 1e-2);
}

TEST(LoraRegistry, ParsesSpecs) {
    EXPECT_EQ(parse_lora_spec("a.safetensors"), (std::pair<std::string, float>{"a.safetensors", 1.0f}));
    EXPECT_EQ(parse_lora_spec("a.safetensors:0.5"), (std::pair<std::string, float>{"a.safetensors", 0.5f}));
    EXPECT_EQ(parse_lora_spec("/x:y/a.safetensors:-1"), (std::pair<std::string, float>{"/x:y/a.safetensors", -1.0f}));
    EXPECT_EQ(parse_lora_spec("/x:y/a.safetensors"), (std::pair<std::string, float>{"/x:y/a.safetensors", 1.0f}));
    expect_error([] { parse_lora_spec("a.safetensors:inf"); }, {"not a finite number"});
    EXPECT_EQ(lora_name_for("/loras/style.safetensors"), "style");
}

}  // namespace
}  // namespace flux2
