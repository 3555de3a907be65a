// Per-layer quantization resolution (quant/quant_config.h): wildcard excludes, the source priority order, the
// checks of every declaration against the tensors, and the NVFP4 nibble-order / scale-layout rule.
#include "quant/quant_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

using nlohmann::json;
using test::data_path;
using test::expect_error;

QuantConfig resolve(const Checkpoint& ckpt, std::optional<json> hf = std::nullopt,
                    std::optional<json> config = std::nullopt) {
    QuantInputs in;
    in.checkpoint = &ckpt;
    in.hf_quant_config = std::move(hf);
    in.hf_quant_config_path = "hf_quant_config.json";
    in.config = std::move(config);
    in.config_path = "config.json";
    return resolve_quant_config(in);
}

json modelopt_hf(const std::string& model) {
    return read_json_file(data_path("tiny-" + model + "-nvfp4-modelopt/hf_quant_config.json"));
}

TEST(Wildcard, WholeNameWithStarsOnly) {
    EXPECT_TRUE(wildcard_match("transformer_blocks.*.attn.add_*_proj", "transformer_blocks.0.attn.add_q_proj"));
    EXPECT_TRUE(wildcard_match("transformer_blocks.*.attn.add_*_proj", "transformer_blocks.17.attn.add_v_proj"));
    EXPECT_FALSE(wildcard_match("transformer_blocks.*.attn.add_*_proj", "transformer_blocks.0.attn.add_q_proj.x"));
    EXPECT_FALSE(wildcard_match("transformer_blocks.*.attn.add_*_proj", "single_transformer_blocks.0.attn.add_q_proj"));
    EXPECT_TRUE(wildcard_match("x_embedder", "x_embedder"));
    EXPECT_FALSE(wildcard_match("x_embedder", "x_embedder2"));
    EXPECT_FALSE(wildcard_match("x_embedder", "a.x_embedder"));
    EXPECT_FALSE(wildcard_match("a.b", "aXb"));       // '.' is literal
    EXPECT_TRUE(wildcard_match("a+b(c)", "a+b(c)"));  // so is every regex metacharacter
    EXPECT_FALSE(wildcard_match("a+b", "aab"));
    EXPECT_FALSE(wildcard_match("a[0-9]", "a1"));
    EXPECT_TRUE(wildcard_match("*", ""));
    EXPECT_TRUE(wildcard_match("*", "anything.at.all"));
    EXPECT_TRUE(wildcard_match("*proj", "to_out.proj"));
    EXPECT_TRUE(wildcard_match("a**b", "ab"));
    EXPECT_TRUE(wildcard_match("*.*.c", "a.b.c"));
    EXPECT_FALSE(wildcard_match("*.*.c", "a.c"));
    EXPECT_FALSE(wildcard_match("", "a"));
}

TEST(QuantConfig, HeaderMetadataOfTheFullNvfp4File) {
    for (const std::string model : {"dev", "klein"}) {
        Checkpoint ckpt = Checkpoint::open(data_path("tiny-" + model + "-nvfp4.safetensors"), true);
        const QuantConfig q = resolve(ckpt);
        EXPECT_EQ(q.declared_by, QuantSource::header_metadata);
        EXPECT_EQ(q.nibble_order, NibbleOrder::hi_first);
        EXPECT_EQ(q.scale_layout, ScaleLayout::swizzled);
        const LayerQuant& qkv = q.layer("double_blocks.0.img_attn.qkv");
        EXPECT_EQ(qkv.format, WeightFormat::nvfp4);
        EXPECT_EQ(qkv.source, QuantSource::header_metadata);
        EXPECT_FALSE(qkv.dynamic_input_scale);
        const LayerQuant& txt = q.layer("double_blocks.0.txt_attn.qkv");
        EXPECT_EQ(txt.format, WeightFormat::dense);
        EXPECT_EQ(txt.label, "bf16");
        EXPECT_EQ(txt.reason, "not listed");
        EXPECT_EQ(q.layer("img_in").format, WeightFormat::dense);
        EXPECT_THROW(q.layer("double_blocks.0.img_attn.norm.query_norm"), Error);  // 1-D: not a linear
    }
}

TEST(QuantConfig, MixedFileMarksTxtMlpDynamic) {
    Checkpoint ckpt = Checkpoint::open(data_path("tiny-dev-nvfp4-mixed.safetensors"), true);
    const QuantConfig q = resolve(ckpt);
    for (int b = 0; b < 2; ++b) {
        const std::string p = "double_blocks." + std::to_string(b) + ".";
        EXPECT_EQ(q.layer(p + "img_attn.qkv").format, WeightFormat::dense);
        EXPECT_EQ(q.layer(p + "img_mlp.0").format, WeightFormat::nvfp4);
        EXPECT_FALSE(q.layer(p + "img_mlp.0").dynamic_input_scale);
        EXPECT_TRUE(q.layer(p + "txt_mlp.0").dynamic_input_scale);
        EXPECT_TRUE(q.layer(p + "txt_mlp.2").dynamic_input_scale);
    }
    EXPECT_NE(q.summary().find("4 without input_scale"), std::string::npos) << q.summary();
}

TEST(QuantConfig, ComfyQuantMarkersNeedTheData) {
    Checkpoint mapped = Checkpoint::open(data_path("tiny-klein-nvfp4-comfyquant.safetensors"));
    const QuantConfig q = resolve(mapped);
    EXPECT_EQ(q.declared_by, QuantSource::comfy_quant);
    EXPECT_EQ(q.layer("single_blocks.1.linear1").format, WeightFormat::nvfp4);
    EXPECT_EQ(q.layer("double_blocks.0.txt_attn.qkv").format, WeightFormat::dense);
    EXPECT_EQ(q.scale_layout, ScaleLayout::swizzled);
    Checkpoint header_only = Checkpoint::open(data_path("tiny-klein-nvfp4-comfyquant.safetensors"), true);
    expect_error([&] { resolve(header_only); }, {"comfy_quant", "header-only"});
}

TEST(QuantConfig, Fp8ComfyMarkers) {
    Checkpoint ckpt = Checkpoint::open(data_path("tiny-dev-fp8-comfy.safetensors"));
    const QuantConfig q = resolve(ckpt);
    EXPECT_EQ(q.declared_by, QuantSource::comfy_quant);
    const LayerQuant& l = q.layer("double_blocks.1.txt_attn.qkv");
    EXPECT_EQ(l.format, WeightFormat::fp8);
    EXPECT_EQ(l.fp8_scale_name, "weight_scale");
    EXPECT_EQ(q.layer("final_layer.linear").format, WeightFormat::dense);
}

TEST(QuantConfig, HfQuantConfigExcludesByWildcardAndUsesModelOptConvention) {
    Checkpoint ckpt = Checkpoint::open(data_path("tiny-dev-nvfp4-modelopt"), true);
    const QuantConfig q = resolve(ckpt, modelopt_hf("dev"));
    EXPECT_EQ(q.declared_by, QuantSource::hf_quant_config);
    EXPECT_EQ(q.nibble_order, NibbleOrder::lo_first);
    EXPECT_EQ(q.scale_layout, ScaleLayout::linear);
    EXPECT_EQ(q.group_size, 16);
    const LayerQuant& add_k = q.layer("transformer_blocks.1.attn.add_k_proj");
    EXPECT_EQ(add_k.format, WeightFormat::dense);
    EXPECT_EQ(add_k.reason, "excluded by pattern \"transformer_blocks.*.attn.add_*_proj\"");
    EXPECT_EQ(q.layer("transformer_blocks.1.attn.to_k").format, WeightFormat::nvfp4);
    EXPECT_EQ(q.layer("single_transformer_blocks.0.attn.to_out").format, WeightFormat::nvfp4);
    EXPECT_EQ(q.layer("x_embedder").format, WeightFormat::dense);

    // Without its hf_quant_config.json the same tensors are still understood, from the tensors alone.
    const QuantConfig inferred = resolve(ckpt);
    EXPECT_EQ(inferred.declared_by, QuantSource::inferred);
    EXPECT_EQ(inferred.layer("transformer_blocks.1.attn.to_k").format, WeightFormat::nvfp4);
    EXPECT_EQ(inferred.layer("transformer_blocks.1.attn.add_k_proj").format, WeightFormat::dense);
    EXPECT_EQ(inferred.nibble_order, NibbleOrder::lo_first);
}

TEST(QuantConfig, PriorityOrder) {
    Checkpoint modelopt = Checkpoint::open(data_path("tiny-dev-nvfp4-modelopt"), true);
    json flat = {{"quant_method", "modelopt"},
                 {"quant_algo", "NVFP4"},
                 {"group_size", 16},
                 {"ignore", modelopt_hf("dev")["quantization"]["exclude_modules"]}};
    json config = {{"num_layers", 2}, {"quantization_config", flat}};
    // config.json alone decides...
    EXPECT_EQ(resolve(modelopt, std::nullopt, config).declared_by, QuantSource::config_json);
    EXPECT_EQ(resolve(modelopt, std::nullopt, config).layer("x_embedder").reason, "excluded by pattern \"x_embedder\"");
    // ...but hf_quant_config.json wins over it.
    EXPECT_EQ(resolve(modelopt, modelopt_hf("dev"), config).declared_by, QuantSource::hf_quant_config);

    // config.json wins over the header metadata of a BFL file: its exclude list must then cover every BF16 layer.
    Checkpoint bfl = Checkpoint::open(data_path("tiny-dev-nvfp4.safetensors"), true);
    json bfl_flat = {{"quant_algo", "NVFP4"},
                     {"ignore",
                      {"img_in", "txt_in", "time_in.*", "guidance_in.*", "*modulation*", "final_layer.*",
                       "double_blocks.*.txt_attn.*"}}};
    const QuantConfig by_config = resolve(bfl, std::nullopt, json{{"quantization_config", bfl_flat}});
    EXPECT_EQ(by_config.declared_by, QuantSource::config_json);
    EXPECT_EQ(by_config.layer("double_blocks.0.img_attn.qkv").format, WeightFormat::nvfp4);
    EXPECT_EQ(by_config.nibble_order, NibbleOrder::hi_first);  // packed-QKV names: BFL convention
    // The header metadata decides when no JSON config says anything.
    EXPECT_EQ(resolve(bfl).declared_by, QuantSource::header_metadata);
    // An unquantized checkpoint resolves from its tensors.
    Checkpoint bf16 = Checkpoint::open(data_path("tiny-dev-bf16.safetensors"), true);
    const QuantConfig plain = resolve(bf16);
    EXPECT_EQ(plain.declared_by, QuantSource::inferred);
    EXPECT_FALSE(plain.has_nvfp4());
    EXPECT_EQ(plain.layer("double_blocks.0.img_attn.qkv").label, "bf16");
}

TEST(QuantConfig, DeclarationsAreCheckedAgainstTheTensors) {
    Checkpoint modelopt = Checkpoint::open(data_path("tiny-dev-nvfp4-modelopt"), true);
    json hf = modelopt_hf("dev");
    auto& excludes = hf["quantization"]["exclude_modules"];
    excludes.erase(std::find(excludes.begin(), excludes.end(), "x_embedder"));
    expect_error([&] { resolve(modelopt, hf); }, {"x_embedder", "nvfp4", "bf16"});

    json wrong_algo = modelopt_hf("dev");
    wrong_algo["quantization"]["quant_algo"] = "FP8";
    expect_error([&] { resolve(modelopt, wrong_algo); }, {"quant_algo", "FP8"});
    json wrong_group = modelopt_hf("dev");
    wrong_group["quantization"]["group_size"] = 32;
    expect_error([&] { resolve(modelopt, wrong_group); }, {"group_size 32"});
    json conflicting = modelopt_hf("dev");
    conflicting["config_groups"] = {{"group_0", {{"weights", {{"group_size", 32}}}}}};
    expect_error([&] { resolve(modelopt, conflicting); }, {"conflicting group_size"});
    json bad_excludes = modelopt_hf("dev");
    bad_excludes["quantization"]["exclude_modules"] = nullptr;
    expect_error([&] { resolve(modelopt, bad_excludes); }, {"exclude_modules"});

    // A forced layout that contradicts the padded scale shapes of tiny-dev is caught.
    Checkpoint bfl = Checkpoint::open(data_path("tiny-dev-nvfp4.safetensors"), true);
    json forced = {{"quantization_config",
                    {{"quant_algo", "NVFP4"},
                     {"checkpoint_weight_scale_layout", "linear"},
                     {"ignore",
                      {"img_in", "txt_in", "time_in.*", "guidance_in.*", "*modulation*", "final_layer.*",
                       "double_blocks.*.txt_attn.*"}}}}};
    expect_error([&] { resolve(bfl, std::nullopt, forced); }, {"weight_scale", "matches the swizzled-128x4"});
}

TEST(QuantConfig, ExplicitNibbleFlag) {
    Checkpoint modelopt = Checkpoint::open(data_path("tiny-klein-nvfp4-modelopt"), true);
    json hf = modelopt_hf("klein");
    hf["quantization"]["swap_weight_nibbles"] = true;
    const QuantConfig q = resolve(modelopt, hf);
    EXPECT_EQ(q.nibble_order, NibbleOrder::hi_first);
    EXPECT_EQ(q.scale_layout, ScaleLayout::linear);
    EXPECT_NE(q.layout_reason.find("hf_quant_config.json"), std::string::npos);
}

TEST(QuantConfig, HeaderOnlyInferenceOfSyntheticLayers) {
    test::TempDir dir;
    SafetensorsWriter w;
    const std::vector<uint8_t> codes(32 * 8, 0x11), scales(128 * 4, 0x38), fp8(32 * 16, 0x38);
    const float one = 1.0f;
    w.add("a.weight", DType::U8, {32, 8}, codes.data(), codes.size());
    w.add("a.weight_scale", DType::F8_E4M3, {128, 4}, scales.data(), scales.size());
    w.add("a.weight_scale_2", DType::F32, {}, &one, 4);
    w.add("b.weight", DType::F8_E4M3, {32, 16}, fp8.data(), fp8.size());
    w.add("b.scale_weight", DType::F32, {}, &one, 4);
    w.add("c.weight", DType::F8_E4M3, {32, 16}, fp8.data(), fp8.size());
    w.add("c.weight_scale", DType::F8_E4M3, {}, scales.data(), 1);
    w.add("single_blocks.0.linear1.weight", DType::F32, {2, 2}, std::vector<float>(4).data(), 16);
    w.write(dir.file("x.safetensors"));
    Checkpoint ckpt = Checkpoint::open(dir.file("x.safetensors"), true);
    const QuantConfig q = resolve(ckpt);
    EXPECT_EQ(q.layer("a").format, WeightFormat::nvfp4);
    EXPECT_TRUE(q.layer("a").dynamic_input_scale);
    EXPECT_EQ(q.layer("b").format, WeightFormat::fp8);
    EXPECT_EQ(q.layer("b").fp8_scale_name, "scale_weight");
    EXPECT_EQ(q.layer("c").fp8_scale_name, "weight_scale");
    EXPECT_EQ(q.layer("single_blocks.0.linear1").label, "f32");
    EXPECT_EQ(q.scale_layout, ScaleLayout::swizzled);  // BFL packed names present

    SafetensorsWriter bad;
    bad.add("a.weight", DType::U8, {32, 8}, codes.data(), codes.size());
    bad.add("a.weight_scale", DType::F32, {}, &one, 4);
    bad.write(dir.file("bad.safetensors"));
    Checkpoint bad_ckpt = Checkpoint::open(dir.file("bad.safetensors"), true);
    expect_error([&] { resolve(bad_ckpt); }, {"a.weight", "U8", "2-D F8_E4M3"});
}

}  // namespace
}  // namespace flux2
