// The LoRA reader: key formats, layer maps and scales read from each file kind, the final-layer half swap, skipped
// text-encoder tensors, and every refusal a file alone can cause (A without B, NaN/Inf, unsupported adapter kinds,
// unknown layers), each naming the file and key.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "golden_data.h"
#include "io/safetensors.h"
#include "models/lora/lora_adapter.h"
#include "models/names.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

std::string lora_path(const std::string& file) { return test::data_path("lora/" + file); }

using test::expect_error;

TEST(LoraReader, KohyaNamesMapToBflLayers) {
    EXPECT_EQ(kohya_to_bfl_layer("double_blocks_12_img_attn_qkv"), "double_blocks.12.img_attn.qkv");
    EXPECT_EQ(kohya_to_bfl_layer("double_blocks_0_txt_mlp_2"), "double_blocks.0.txt_mlp.2");
    EXPECT_EQ(kohya_to_bfl_layer("single_blocks_3_linear1"), "single_blocks.3.linear1");
    EXPECT_EQ(kohya_to_bfl_layer("final_layer_adaLN_modulation_1"), "final_layer.adaLN_modulation.1");
    EXPECT_EQ(kohya_to_bfl_layer("double_stream_modulation_img_lin"), "double_stream_modulation_img.lin");
    EXPECT_EQ(kohya_to_bfl_layer("double_blocks_0_img_attn_qkv_extra"), std::nullopt);
    EXPECT_EQ(kohya_to_bfl_layer("double_blocks_x_img_attn_qkv"), std::nullopt);
}

TEST(LoraReader, FormatsRanksAndScales) {
    struct Expect {
        const char* file;
        const char* format;
        size_t layers;
        float scale;
    };
    for (const Expect& e : {Expect{"tiny-dev-lora1-diffusers.safetensors", "diffusers", 33, 0.75f},
                            Expect{"tiny-dev-lora1-bfl.safetensors", "bfl", 25, 1.0f},
                            Expect{"tiny-dev-lora1-peft-bfl.safetensors", "peft-bfl", 25, 1.0f},
                            Expect{"tiny-dev-lora1-kohya.safetensors", "kohya", 25, 0.75f},
                            Expect{"tiny-dev-lora2-diffusers.safetensors", "diffusers", 34, 0.25f}}) {
        LoraAdapter a = read_lora(lora_path(e.file));
        EXPECT_EQ(a.format_label(), e.format) << e.file;
        EXPECT_EQ(a.layers.size(), e.layers) << e.file;
        for (const LoraLayer& l : a.layers) EXPECT_FLOAT_EQ(l.scale, e.scale) << e.file << " " << l.name;
    }
    // A fused BFL qkv layer feeds q, k and v with one shared A and B split in thirds.
    LoraAdapter k = read_lora(lora_path("tiny-dev-lora1-kohya.safetensors"));
    std::vector<const LoraTerm*> qkv;
    for (const LoraTerm& t : k.terms) {
        if (t.key == "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight") qkv.push_back(&t);
    }
    ASSERT_EQ(qkv.size(), 3u);
    EXPECT_EQ(qkv[0]->module, "transformer_blocks.0.attn.to_q");
    EXPECT_EQ(qkv[2]->module, "transformer_blocks.0.attn.to_v");
    EXPECT_EQ(qkv[0]->a, qkv[1]->a);
    EXPECT_EQ(qkv[1]->out_features, 64);
}

// The delta scale * B A of the fused img qkv layer, from the kohya file, equals the golden delta.
TEST(LoraReader, FusedQkvDeltaMatchesGolden) {
    LoraAdapter k = read_lora(lora_path("tiny-dev-lora1-kohya.safetensors"));
    auto golden = SafetensorsFile::open(lora_path("tiny-dev-lora-golden.safetensors"));
    const std::vector<float> ref = read_f32(test::golden_tensor(*golden, "delta.lora1.double_blocks.0.img_attn.qkv"));
    std::vector<float> delta;
    for (const LoraTerm& t : k.terms) {
        if (t.key != "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight") continue;
        for (int64_t o = 0; o < t.out_features; ++o) {
            for (int64_t i = 0; i < t.in_features; ++i) {
                double s = 0;
                for (int64_t r = 0; r < t.rank; ++r) s += double(t.b[o * t.rank + r]) * (*t.a)[r * t.in_features + i];
                delta.push_back(static_cast<float>(t.scale * s));
            }
        }
    }
    EXPECT_LE(test::rel_error(delta, ref), 1e-6);
}

// Writes LoRA pairs of constant values.
struct Writer {
    SafetensorsWriter w;
    void pair(const std::string& layer, int64_t rank, int64_t in, int64_t out, const char* a = ".lora_A.weight",
              const char* b = ".lora_B.weight", float value = 0.01f) {
        std::vector<float> av(rank * in, value), bv(out * rank, value);
        w.add_f32(layer + a, {rank, in}, av.data());
        w.add_f32(layer + b, {out, rank}, bv.data());
    }
};

TEST(LoraReader, TextEncoderKeysAreSkipped) {
    test::TempDir dir;
    Writer f;
    f.pair("transformer.proj_out", 2, 64, 128);
    f.pair("text_encoder.layers.0.q_proj", 2, 8, 8);
    f.pair("lora_te_text_model_encoder_layers_0_q_proj", 2, 8, 8, ".lora_down.weight", ".lora_up.weight");
    f.w.write(dir.file("te.safetensors"));
    LoraAdapter a = read_lora(dir.file("te.safetensors"));
    EXPECT_EQ(a.skipped_text_encoder_tensors, 4);
    ASSERT_EQ(a.terms.size(), 1u);
    EXPECT_EQ(a.terms[0].module, "proj_out");
}

TEST(LoraReader, AdaLnHalvesSwapForBflOrder) {
    test::TempDir dir;
    SafetensorsWriter w;
    std::vector<float> a(1 * 4, 1.0f), b = {1, 2, 3, 4, 5, 6, 7, 8};  // [8, 1]: rows shift 1..4, scale 5..8
    w.add_f32("diffusion_model.final_layer.adaLN_modulation.1.lora_A.weight", {1, 4}, a.data());
    w.add_f32("diffusion_model.final_layer.adaLN_modulation.1.lora_B.weight", {8, 1}, b.data());
    w.add_f32("transformer.norm_out.linear.lora_A.weight", {1, 4}, a.data());
    w.add_f32("transformer.norm_out.linear.lora_B.weight", {8, 1}, b.data());
    w.write(dir.file("bfl.safetensors"));
    // Both name the same module: refused, naming both keys.
    expect_error([&] { read_lora(dir.file("bfl.safetensors")); },
                 {"bfl.safetensors", "final_layer.adaLN_modulation.1.lora_A.weight", "norm_out.linear.lora_A.weight"});
    SafetensorsWriter only_bfl;
    only_bfl.add_f32("diffusion_model.final_layer.adaLN_modulation.1.lora_A.weight", {1, 4}, a.data());
    only_bfl.add_f32("diffusion_model.final_layer.adaLN_modulation.1.lora_B.weight", {8, 1}, b.data());
    only_bfl.write(dir.file("only.safetensors"));
    LoraAdapter l = read_lora(dir.file("only.safetensors"));
    ASSERT_EQ(l.terms.size(), 1u);
    EXPECT_EQ(l.terms[0].module, "norm_out.linear");
    EXPECT_EQ(l.terms[0].b, (std::vector<float>{5, 6, 7, 8, 1, 2, 3, 4}));  // diffusers (scale, shift)
}

// diffusers files: alpha from the PEFT metadata (lora_alpha, alpha_pattern, rsLoRA), scale 1 without it.
TEST(LoraReader, PeftMetadataAlpha) {
    test::TempDir dir;
    auto scales = [&](const std::string& metadata) {
        Writer f;
        f.pair("transformer.proj_out", 4, 64, 128);
        f.pair("transformer.x_embedder", 4, 128, 64);
        if (!metadata.empty()) f.w.set_metadata("lora_adapter_metadata", metadata);
        f.w.write(dir.file("m.safetensors"));
        std::map<std::string, float> out;
        for (const LoraTerm& t : read_lora(dir.file("m.safetensors")).terms) out[t.module] = t.scale;
        return out;
    };
    EXPECT_EQ(scales(""), (std::map<std::string, float>{{"proj_out", 1.0f}, {"x_embedder", 1.0f}}));
    EXPECT_EQ(
        scales(R"({"transformer.r": 4, "transformer.lora_alpha": 8, "transformer.alpha_pattern": {"proj_out": 2}})"),
        (std::map<std::string, float>{{"proj_out", 0.5f}, {"x_embedder", 2.0f}}));
    EXPECT_EQ(scales(R"({"transformer.lora_alpha": 4, "transformer.use_rslora": true})"),
              (std::map<std::string, float>{{"proj_out", 2.0f}, {"x_embedder", 2.0f}}));
    expect_error([&] { scales(R"({"transformer.use_dora": true})"); }, {"m.safetensors", "use_dora", "DoRA"});
}

TEST(LoraReader, RefusesBrokenFiles) {
    test::TempDir dir;
    {
        SafetensorsWriter w;
        std::vector<float> a(2 * 64, 0.1f);
        w.add_f32("transformer.proj_out.lora_A.weight", {2, 64}, a.data());
        w.write(dir.file("a_only.safetensors"));
        expect_error([&] { read_lora(dir.file("a_only.safetensors")); },
                     {"a_only.safetensors", "transformer.proj_out.lora_A.weight", "no B"});
    }
    {
        Writer f;
        f.pair("transformer.proj_out", 2, 64, 128, ".lora_A.weight", ".lora_B.weight", NAN);
        f.w.write(dir.file("nan.safetensors"));
        expect_error([&] { read_lora(dir.file("nan.safetensors")); }, {"nan.safetensors", "proj_out.lora_", "nan"});
    }
    {
        Writer f;
        f.pair("transformer.proj_out", 2, 64, 128, ".lora_A.weight", ".lora_B.weight", INFINITY);
        f.w.write(dir.file("inf.safetensors"));
        expect_error([&] { read_lora(dir.file("inf.safetensors")); }, {"inf.safetensors", "inf"});
    }
    struct Kind {
        const char* key;
        const char* what;
    };
    for (const Kind& k :
         {Kind{"lora_unet_double_blocks_0_img_attn_qkv.lokr_w1", "LoKr"},
          Kind{"lora_unet_double_blocks_0_img_attn_qkv.hada_w1_a", "LoHa"},
          Kind{"transformer.proj_out.lora_magnitude_vector", "DoRA"}, Kind{"diffusion_model.img_in.dora_scale", "DoRA"},
          Kind{"diffusion_model.img_in.something", "not part of a LoRA pair"},
          Kind{"diffusion_model.no_such_layer.lora_A.weight", "names no FLUX.2 transformer layer"},
          Kind{"lora_unet_no_such_layer.lora_down.weight", "names no FLUX.2 transformer layer"}}) {
        Writer f;
        f.pair("transformer.proj_out", 2, 64, 128);
        std::vector<float> v(4, 0.5f);
        f.w.add_f32(k.key, {2, 2}, v.data());
        f.w.write(dir.file("kind.safetensors"));
        expect_error([&] { read_lora(dir.file("kind.safetensors")); }, {"kind.safetensors", k.key, k.what});
    }
}

}  // namespace
}  // namespace flux2
