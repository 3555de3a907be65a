// The transformer checkpoint binder against every layout in the golden set: each linear of the model must
// dequantize to the reference weights (the BFL bf16 file for bf16 layers, the `dequant.*` goldens for NVFP4,
// the raw FP8 codes x scale for FP8), with the name map, QKV splits and final-layer swap checked independently of
// models/names.cpp by the explicit table below.
#include "models/transformer_checkpoint.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/names.h"
#include "quant/float_codecs.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

namespace fs = std::filesystem;
using test::data_path;
using test::expect_error;

struct TinyModel {
    std::string name;  // "dev" / "klein"
    int64_t D, M, ctx, layers, singles;
    bool guidance;
};
const TinyModel kDev{"dev", 64, 192, 96, 2, 2, true};
const TinyModel kKlein{"klein", 128, 384, 48, 1, 2, false};

// One linear of the model: internal name, shape, and where the BFL file keeps it.
struct LinearSpec {
    std::string module;
    int64_t out, in;
    std::string bfl;  // BFL module
    int64_t row_begin = 0;
    bool swapped = false;
};

std::vector<LinearSpec> model_linears(const TinyModel& m) {
    const int64_t D = m.D, M = m.M;
    std::vector<LinearSpec> v = {
        {"x_embedder", D, 128, "img_in"},
        {"context_embedder", D, m.ctx, "txt_in"},
        {"time_guidance_embed.timestep_embedder.linear_1", D, 256, "time_in.in_layer"},
        {"time_guidance_embed.timestep_embedder.linear_2", D, D, "time_in.out_layer"},
        {"double_stream_modulation_img.linear", 6 * D, D, "double_stream_modulation_img.lin"},
        {"double_stream_modulation_txt.linear", 6 * D, D, "double_stream_modulation_txt.lin"},
        {"single_stream_modulation.linear", 3 * D, D, "single_stream_modulation.lin"},
        {"norm_out.linear", 2 * D, D, "final_layer.adaLN_modulation.1", 0, true},
        {"proj_out", 128, D, "final_layer.linear"},
    };
    if (m.guidance) {
        v.push_back({"time_guidance_embed.guidance_embedder.linear_1", D, 256, "guidance_in.in_layer"});
        v.push_back({"time_guidance_embed.guidance_embedder.linear_2", D, D, "guidance_in.out_layer"});
    }
    for (int64_t i = 0; i < m.layers; ++i) {
        const std::string p = str("transformer_blocks.", i, "."), b = str("double_blocks.", i, ".");
        v.push_back({p + "attn.to_q", D, D, b + "img_attn.qkv", 0});
        v.push_back({p + "attn.to_k", D, D, b + "img_attn.qkv", D});
        v.push_back({p + "attn.to_v", D, D, b + "img_attn.qkv", 2 * D});
        v.push_back({p + "attn.to_out.0", D, D, b + "img_attn.proj"});
        v.push_back({p + "attn.add_q_proj", D, D, b + "txt_attn.qkv", 0});
        v.push_back({p + "attn.add_k_proj", D, D, b + "txt_attn.qkv", D});
        v.push_back({p + "attn.add_v_proj", D, D, b + "txt_attn.qkv", 2 * D});
        v.push_back({p + "attn.to_add_out", D, D, b + "txt_attn.proj"});
        v.push_back({p + "ff.linear_in", 2 * M, D, b + "img_mlp.0"});
        v.push_back({p + "ff.linear_out", D, M, b + "img_mlp.2"});
        v.push_back({p + "ff_context.linear_in", 2 * M, D, b + "txt_mlp.0"});
        v.push_back({p + "ff_context.linear_out", D, M, b + "txt_mlp.2"});
    }
    for (int64_t i = 0; i < m.singles; ++i) {
        const std::string p = str("single_transformer_blocks.", i, ".attn."), b = str("single_blocks.", i, ".");
        v.push_back({p + "to_qkv_mlp_proj", 3 * D + 2 * M, D, b + "linear1"});
        v.push_back({p + "to_out", D, D + M, b + "linear2"});
    }
    return v;
}

std::vector<std::pair<std::string, std::string>> model_norms(const TinyModel& m) {  // internal, BFL
    std::vector<std::pair<std::string, std::string>> v;
    for (int64_t i = 0; i < m.layers; ++i) {
        const std::string p = str("transformer_blocks.", i, ".attn."), b = str("double_blocks.", i, ".");
        v.push_back({p + "norm_q.weight", b + "img_attn.norm.query_norm.scale"});
        v.push_back({p + "norm_k.weight", b + "img_attn.norm.key_norm.scale"});
        v.push_back({p + "norm_added_q.weight", b + "txt_attn.norm.query_norm.scale"});
        v.push_back({p + "norm_added_k.weight", b + "txt_attn.norm.key_norm.scale"});
    }
    for (int64_t i = 0; i < m.singles; ++i) {
        const std::string p = str("single_transformer_blocks.", i, ".attn."), b = str("single_blocks.", i, ".");
        v.push_back({p + "norm_q.weight", b + "norm.query_norm.scale"});
        v.push_back({p + "norm_k.weight", b + "norm.key_norm.scale"});
    }
    return v;
}

// Rows [begin, begin + rows) of a [*, cols] matrix, with the halves swapped if asked.
std::vector<float> rows_of(const std::vector<float>& full, int64_t cols, int64_t begin, int64_t rows, bool swap) {
    std::vector<float> out(full.begin() + begin * cols, full.begin() + (begin + rows) * cols);
    if (swap) std::rotate(out.begin(), out.begin() + out.size() / 2, out.end());
    return out;
}

int64_t ulp_distance(float a, float b) {
    auto key = [](float f) {
        const int32_t i = std::bit_cast<int32_t>(f);
        return i < 0 ? int64_t{INT32_MIN} - i : int64_t{i};
    };
    return std::llabs(key(a) - key(b));
}

void expect_within_ulp(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    int64_t worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < got.size(); ++i) {
        const int64_t d = ulp_distance(got[i], want[i]);
        if (d > worst) worst = d, at = i;
    }
    EXPECT_LE(worst, 1) << what << ": element " << at << " is " << got[at] << ", reference " << want[at];
}

// The reference value of one linear for a layout variant.
struct Reference {
    std::shared_ptr<SafetensorsFile> bf16, golden, fp8;
    std::string variant;  // "", "nvfp4", "nvfp4-mixed", "fp8"

    std::vector<float> weight(const LinearSpec& s) const {
        const std::string dq = "dequant." + variant + "." + s.bfl;
        if (golden && golden->find(dq)) {
            const TensorInfo& t = *golden->find(dq);
            return rows_of(read_f32(t), t.shape[1], s.row_begin, s.out, s.swapped);
        }
        if (fp8 && fp8->find(s.bfl + ".weight")->dtype == DType::F8_E4M3) {
            const TensorInfo& t = *fp8->find(s.bfl + ".weight");
            const float scale = read_f32(*fp8->find(s.bfl + ".weight_scale"))[0];
            std::vector<float> full(t.nbytes);
            for (size_t i = 0; i < full.size(); ++i) full[i] = e4m3_to_f32(t.data[i]) * scale;
            return rows_of(full, t.shape[1], s.row_begin, s.out, s.swapped);
        }
        const TensorInfo& t = *bf16->find(s.bfl + ".weight");
        return rows_of(read_f32(t), t.shape[1], s.row_begin, s.out, s.swapped);
    }
    // The format the layer must come out in.
    std::string label(const LinearSpec& s) const {
        if (golden && golden->find("dequant." + variant + "." + s.bfl)) return "nvfp4";
        if (fp8 && fp8->find(s.bfl + ".weight")->dtype == DType::F8_E4M3) return "fp8";
        return "bf16";
    }
};

struct LayoutCase {
    const TinyModel* model;
    std::string path;     // under tests/data
    std::string variant;  // reference variant
};

std::ostream& operator<<(std::ostream& os, const LayoutCase& c) { return os << c.path; }

class TransformerLayouts : public ::testing::TestWithParam<LayoutCase> {};

TEST_P(TransformerLayouts, EveryLinearMatchesTheReference) {
    const LayoutCase& c = GetParam();
    const TinyModel& m = *c.model;
    Reference ref;
    ref.variant = c.variant;
    ref.bf16 = SafetensorsFile::open(data_path("tiny-" + m.name + "-bf16.safetensors"));
    if (c.variant.rfind("nvfp4", 0) == 0)
        ref.golden = SafetensorsFile::open(data_path("tiny-" + m.name + "-golden.safetensors"));
    if (c.variant == "fp8") ref.fp8 = SafetensorsFile::open(data_path("tiny-" + m.name + "-fp8-comfy.safetensors"));

    TransformerCheckpoint ckpt = TransformerCheckpoint::open(data_path(c.path));
    for (const LinearSpec& s : model_linears(m)) {
        SCOPED_TRACE(s.module);
        ASSERT_TRUE(ckpt.has(s.module + ".weight"));
        EXPECT_EQ(ckpt.shape_of(s.module + ".weight"), (Shape{s.out, s.in}));
        const LinearWeight w = ckpt.take_linear(s.module, s.out, s.in);
        EXPECT_EQ(w.format_label(), ref.label(s));
        expect_within_ulp(dequantize(w), ref.weight(s), s.module);
    }
    for (const auto& [internal, bfl] : model_norms(m)) {
        const Tensor t = ckpt.take_f32(internal, {32});
        EXPECT_EQ(t.to_vector(), read_f32(*ref.bf16->find(bfl))) << internal;
    }
    EXPECT_NO_THROW(ckpt.finish());
    EXPECT_NE(ckpt.describe().find("linears"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Golden, TransformerLayouts,
                         ::testing::Values(LayoutCase{&kDev, "tiny-dev-bf16.safetensors", ""},
                                           LayoutCase{&kKlein, "tiny-klein-bf16.safetensors", ""},
                                           LayoutCase{&kDev, "tiny-dev-diffusers", ""},
                                           LayoutCase{&kKlein, "tiny-klein-diffusers", ""},
                                           LayoutCase{&kDev, "tiny-dev-nvfp4.safetensors", "nvfp4"},
                                           LayoutCase{&kKlein, "tiny-klein-nvfp4.safetensors", "nvfp4"},
                                           LayoutCase{&kDev, "tiny-dev-nvfp4-mixed.safetensors", "nvfp4-mixed"},
                                           LayoutCase{&kKlein, "tiny-klein-nvfp4-mixed.safetensors", "nvfp4-mixed"},
                                           LayoutCase{&kDev, "tiny-dev-nvfp4-comfyquant.safetensors", "nvfp4"},
                                           LayoutCase{&kKlein, "tiny-klein-nvfp4-comfyquant.safetensors", "nvfp4"},
                                           LayoutCase{&kDev, "tiny-dev-nvfp4-modelopt", "nvfp4"},
                                           LayoutCase{&kKlein, "tiny-klein-nvfp4-modelopt", "nvfp4"},
                                           LayoutCase{&kDev, "tiny-dev-fp8-comfy.safetensors", "fp8"},
                                           LayoutCase{&kKlein, "tiny-klein-fp8-comfy.safetensors", "fp8"}));

TEST(TransformerCheckpoint, ModelOptFolderEqualsTheBflNvfp4FileExactly) {
    for (const TinyModel* m : {&kDev, &kKlein}) {
        TransformerCheckpoint a = TransformerCheckpoint::open(data_path("tiny-" + m->name + "-nvfp4-modelopt"));
        TransformerCheckpoint b = TransformerCheckpoint::open(data_path("tiny-" + m->name + "-nvfp4.safetensors"));
        EXPECT_EQ(a.quant().declared_by, QuantSource::hf_quant_config);
        for (const LinearSpec& s : model_linears(*m)) {
            const LinearWeight wa = a.take_linear(s.module, s.out, s.in), wb = b.take_linear(s.module, s.out, s.in);
            EXPECT_EQ(wa.format, wb.format) << s.module;
            EXPECT_EQ(dequantize(wa), dequantize(wb)) << s.module;
            if (wa.format == WeightFormat::nvfp4) {  // the canonical form is byte-identical too
                EXPECT_EQ(wa.nvfp4.codes, wb.nvfp4.codes) << s.module;
                EXPECT_EQ(wa.nvfp4.scales, wb.nvfp4.scales) << s.module;
                EXPECT_EQ(wa.nvfp4.input_scale, wb.nvfp4.input_scale) << s.module;
            }
        }
    }
}

TEST(TransformerCheckpoint, MixedFileTxtMlpHasNoInputScale) {
    TransformerCheckpoint ckpt = TransformerCheckpoint::open(data_path("tiny-dev-nvfp4-mixed.safetensors"));
    for (int i = 0; i < 2; ++i) {
        const std::string p = str("transformer_blocks.", i, ".");
        EXPECT_FALSE(ckpt.take_linear(p + "ff_context.linear_in", 384, 64).nvfp4.input_scale.has_value());
        EXPECT_FALSE(ckpt.take_linear(p + "ff_context.linear_out", 64, 192).nvfp4.input_scale.has_value());
        EXPECT_TRUE(ckpt.take_linear(p + "ff.linear_in", 384, 64).nvfp4.input_scale.has_value());
        EXPECT_EQ(ckpt.take_linear(p + "attn.to_q", 64, 64).format, WeightFormat::dense);
    }
    bool listed = false;
    for (const auto& info : ckpt.linears()) {
        if (info.module == "transformer_blocks.0.ff_context.linear_in") {
            listed = true;
            EXPECT_TRUE(info.quant.dynamic_input_scale);
            EXPECT_EQ(info.checkpoint_module, "double_blocks.0.txt_mlp.0");
        }
        if (info.module == "transformer_blocks.1.attn.to_v") {
            EXPECT_EQ(info.checkpoint_module, "double_blocks.1.img_attn.qkv rows 128..192");
        }
    }
    EXPECT_TRUE(listed);
}

TEST(TransformerCheckpoint, FolderPrefersTheMixedFile) {
    test::TempDir dir;
    fs::copy_file(data_path("tiny-dev-nvfp4.safetensors"), dir.file("flux2-tiny-nvfp4.safetensors"));
    fs::copy_file(data_path("tiny-dev-nvfp4-mixed.safetensors"), dir.file("flux2-tiny-nvfp4-mixed.safetensors"));
    TransformerCheckpoint ckpt = TransformerCheckpoint::open(dir.path().string());
    EXPECT_EQ(ckpt.take_linear("transformer_blocks.0.attn.to_q", 64, 64).format, WeightFormat::dense);
    EXPECT_NE(ckpt.describe().find("mixed"), std::string::npos) << ckpt.describe();
}

TEST(TransformerCheckpoint, IndexJsonAndComfyPrefix) {
    test::TempDir dir;
    // A ComfyUI-style copy: every name under "model.diffusion_model.", metadata layer names left bare.
    auto src = SafetensorsFile::open(data_path("tiny-klein-nvfp4.safetensors"));
    SafetensorsWriter w;
    nlohmann::json weight_map;
    for (const TensorInfo& t : src->tensors()) {
        w.add("model.diffusion_model." + t.name, t.dtype, t.shape, t.data, t.nbytes);
        weight_map["model.diffusion_model." + t.name] = "shard.safetensors";
    }
    for (const auto& [k, v] : src->metadata()) w.set_metadata(k, v);
    w.write(dir.file("shard.safetensors"));
    std::ofstream(dir.file("model.safetensors.index.json")) << nlohmann::json{{"weight_map", weight_map}}.dump();

    TransformerCheckpoint via_index = TransformerCheckpoint::open(dir.file("model.safetensors.index.json"));
    TransformerCheckpoint plain = TransformerCheckpoint::open(data_path("tiny-klein-nvfp4.safetensors"));
    for (const LinearSpec& s : model_linears(kKlein)) {
        EXPECT_EQ(dequantize(via_index.take_linear(s.module, s.out, s.in)),
                  dequantize(plain.take_linear(s.module, s.out, s.in)))
            << s.module;
    }
    EXPECT_EQ(via_index.quant().layer("model.diffusion_model.single_blocks.0.linear1").format, WeightFormat::nvfp4);
}

TEST(TransformerCheckpoint, WrongModelListsUnknownAndMissing) {
    test::TempDir dir;
    const std::vector<float> z(16, 0.0f);
    SafetensorsWriter llm;
    llm.add_f32("model.layers.0.self_attn.q_proj.weight", {4, 4}, z.data());
    llm.add_f32("model.embed_tokens.weight", {4, 4}, z.data());
    llm.write(dir.file("llm.safetensors"));
    expect_error([&] { TransformerCheckpoint::open(dir.file("llm.safetensors")); },
                 {"not a FLUX.2 transformer", "unknown tensors (2)", "model.layers.0.self_attn.q_proj.weight",
                  "missing tensors (9)", "x_embedder.weight (BFL: img_in.weight)"});

    // FLUX.1 reuses many BFL names; its own ones are unknown here and FLUX.2's modulation linears are missing.
    SafetensorsWriter flux1;
    flux1.add_f32("img_in.weight", {4, 4}, z.data());
    flux1.add_f32("double_blocks.0.img_attn.qkv.weight", {4, 4}, z.data());
    flux1.add_f32("double_blocks.0.img_mod.lin.weight", {4, 4}, z.data());
    flux1.add_f32("vector_in.in_layer.weight", {4, 4}, z.data());
    flux1.write(dir.file("flux1.safetensors"));
    expect_error([&] { TransformerCheckpoint::open(dir.file("flux1.safetensors")); },
                 {"unknown tensors (2)", "double_blocks.0.img_mod.lin.weight", "vector_in.in_layer.weight",
                  "missing tensors (8)", "double_stream_modulation_img.linear.weight"});
}

TEST(TransformerCheckpoint, FinishReportsUnusedAndMissing) {
    test::TempDir dir;
    auto src = SafetensorsFile::open(data_path("tiny-klein-bf16.safetensors"));
    SafetensorsWriter w;
    for (const TensorInfo& t : src->tensors()) w.add(t.name, t.dtype, t.shape, t.data, t.nbytes);
    const std::vector<float> bias(384, 0.0f);
    w.add_f32("double_blocks.0.img_attn.qkv.bias", {384}, bias.data());
    w.write(dir.file("extra.safetensors"));

    TransformerCheckpoint ckpt = TransformerCheckpoint::open(dir.file("extra.safetensors"));
    for (const LinearSpec& s : model_linears(kKlein)) ckpt.take_linear(s.module, s.out, s.in);
    for (const auto& [internal, bfl] : model_norms(kKlein)) ckpt.take_f32(internal, {32});
    expect_error([&] { ckpt.take_linear("transformer_blocks.0.attn.to_q", 128, 64); },
                 {"transformer_blocks.0.attn.to_q", "double_blocks.0.img_attn.qkv rows [0, 128)", "[128, 128]",
                  "expected [128, 64]"});
    expect_error([&] { ckpt.take_linear("time_guidance_embed.guidance_embedder.linear_1", 128, 256); },
                 {"missing linear guidance_in.in_layer.weight (expected [128, 256])"});
    expect_error([&] { ckpt.take_f32("x_embedder.weight", {128, 128}); }, {"take_linear"});
    expect_error([&] { ckpt.finish(); }, {"unused checkpoint tensors (1)", "transformer_blocks.0.attn.to_qkv.bias",
                                          "double_blocks.0.img_attn.qkv.bias", "missing tensors (1)",
                                          "guidance_in.in_layer.weight [128, 256]"});

    TransformerCheckpoint partial = TransformerCheckpoint::open(data_path("tiny-klein-bf16.safetensors"));
    partial.take_linear("x_embedder", 128, 128);
    expect_error([&] { partial.finish(); }, {"unused checkpoint tensors",
                                             "proj_out.weight (checkpoint: "
                                             "final_layer.linear.weight)"});
}

TEST(Names, BflToInternalChainsRules) {
    EXPECT_EQ(bfl_to_internal("double_blocks.3.img_attn.norm.query_norm.scale"),
              "transformer_blocks.3.attn.norm_q.weight");
    EXPECT_EQ(bfl_to_internal("model.diffusion_model.single_blocks.12.norm.key_norm.scale"),
              "single_transformer_blocks.12.attn.norm_k.weight");
    EXPECT_EQ(bfl_to_internal("double_blocks.0.img_mlp.0.weight_scale_2"),
              "transformer_blocks.0.ff.linear_in.weight_scale_2");
    EXPECT_EQ(bfl_to_internal("double_blocks.0.txt_attn.qkv.weight"), "transformer_blocks.0.attn.to_added_qkv.weight");
    EXPECT_EQ(bfl_to_internal("final_layer.adaLN_modulation.1.weight"), "norm_out.linear.weight");
    EXPECT_EQ(bfl_to_internal("time_in.in_layer.weight"), "time_guidance_embed.timestep_embedder.linear_1.weight");
    EXPECT_EQ(bfl_to_internal("transformer.img_in.weight"), "x_embedder.weight");
    EXPECT_EQ(bfl_to_internal("double_blocks.x.img_attn.qkv.weight"), std::nullopt);
    EXPECT_EQ(bfl_to_internal("double_blocks.0.img_mod.lin.weight"), std::nullopt);
    EXPECT_EQ(bfl_to_internal("x_embedder.weight"), std::nullopt);
    EXPECT_EQ(bfl_to_internal("some.scale"), std::nullopt);  // ".scale" alone is not a BFL rule
    EXPECT_TRUE(is_internal_transformer_name("transformer_blocks.0.attn.to_q.weight"));
    EXPECT_FALSE(is_internal_transformer_name("double_blocks.0.img_attn.qkv.weight"));
}

}  // namespace
}  // namespace flux2
