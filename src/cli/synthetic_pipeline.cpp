#include "cli/synthetic_pipeline.h"

#include <cstdlib>
#include <fstream>

#include "backend/backend.h"
#include "cli/demo.h"
#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_synthetic.h"
#include "models/recording_random_weights.h"
#include "models/text_encoder/text_encoder.h"
#include "models/vae/vae.h"

namespace fs = std::filesystem;

namespace flux2::cli {

namespace {
void write_json(const fs::path& path, const nlohmann::json& j) {
    std::ofstream f(path);
    check(static_cast<bool>(f), "cannot write ", path.string());
    f << j.dump(1) << "\n";
}

nlohmann::json qwen3_config(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads, int64_t head_dim,
                            int64_t mlp) {
    return {{"architectures", {"Qwen3ForCausalLM"}},
            {"model_type", "qwen3"},
            {"vocab_size", 151936},
            {"hidden_size", hidden},
            {"intermediate_size", mlp},
            {"num_hidden_layers", layers},
            {"num_attention_heads", heads},
            {"num_key_value_heads", kv_heads},
            {"head_dim", head_dim},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 1000000.0},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", true},
            {"max_position_embeddings", 40960}};
}

// Mistral-Small-3.x's text model (mistralai/Mistral-Small-3.1-24B-Instruct-2503's text_config) as a plain
// MistralForCausalLM config.
nlohmann::json mistral_small_config() {
    return {{"architectures", {"MistralForCausalLM"}},
            {"model_type", "mistral"},
            {"vocab_size", 131072},
            {"hidden_size", 5120},
            {"intermediate_size", 32768},
            {"num_hidden_layers", 40},
            {"num_attention_heads", 32},
            {"num_key_value_heads", 8},
            {"head_dim", 128},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 1000000000.0},
            {"hidden_act", "silu"},
            {"sliding_window", nullptr},
            {"tie_word_embeddings", false},
            {"max_position_embeddings", 131072}};
}

nlohmann::json vae_config(std::vector<int64_t> channels, int64_t layers_per_block) {
    return {{"_class_name", "AutoencoderKLFlux2"},
            {"in_channels", 3},
            {"out_channels", 3},
            {"block_out_channels", channels},
            {"layers_per_block", layers_per_block},
            {"latent_channels", 32},
            {"norm_num_groups", 32},
            {"batch_norm_eps", 1e-4},
            {"patch_size", {2, 2}}};
}
}  // namespace

SyntheticPipelineSpec tiny_pipeline_spec() {
    SyntheticPipelineSpec s;
    s.seed = 20261128;
    // Qwen3-shaped with 28 layers, so klein's layers 9, 18, 27 exist, but only 64 wide.
    s.text_encoder = qwen3_config(64, 28, 4, 2, 16, 128);
    s.text_encoder_layers = {9, 18, 27, 28};
    s.vae = vae_config({32, 32, 64, 64}, 1);
    // A klein-style transformer small enough for a CPU: D = 256 (4 heads x 64), 2 double + 4 single blocks.
    Flux2Config& c = s.transformer;
    c.num_layers = 2;
    c.num_single_layers = 4;
    c.attention_head_dim = 64;
    c.num_attention_heads = 4;
    c.axes_dims_rope = {16, 16, 16, 16};
    c.joint_attention_dim = 3 * 64;
    c.guidance_embeds = false;
    s.transformer_file = "flux2-demo-nvfp4-mixed.safetensors";
    return s;
}

SyntheticPipelineSpec tiny_dev_pipeline_spec() {
    SyntheticPipelineSpec s = tiny_pipeline_spec();
    // Mistral-shaped (no q/k norms, 40 layers of which dev reads 10, 20 and 30) but 64 wide, in NVFP4.
    s.text_encoder = mistral_small_config();
    for (auto [key, value] : {std::pair<const char*, int64_t>{"hidden_size", 64},
                              {"intermediate_size", 128},
                              {"num_attention_heads", 4},
                              {"num_key_value_heads", 2},
                              {"head_dim", 16}})
        s.text_encoder[key] = value;
    s.text_encoder_layers = {flux2_hidden_layers(DecoderFamily::mistral).back()};
    s.text_encoder_nvfp4 = true;
    s.tokenizer = "mistral-tekken-tokenizer";
    s.transformer.guidance_embeds = true;
    s.transformer_file = "flux2-tiny-dev-nvfp4-mixed.safetensors";
    return s;
}

SyntheticPipelineSpec real_size_pipeline_spec(const std::string& preset, uint64_t seed, bool small_text_encoder) {
    SyntheticPipelineSpec s;
    s.seed = seed;
    s.transformer = Flux2Config::preset(preset);
    const int64_t width = s.transformer.joint_attention_dim / 3;
    if (small_text_encoder) {
        s.text_encoder = qwen3_config(width, preset == "dev" ? 30 : 36, 8, 8, 128, 512);  // stand-in
    } else if (preset == "dev") {
        s.text_encoder = mistral_small_config();
        s.text_encoder_nvfp4 = true;  // 9.7 GB instead of 33 GB in bf16
        s.tokenizer = "mistral-tekken-tokenizer";
    } else if (preset == "klein-4b")
        s.text_encoder = qwen3_config(2560, 36, 32, 8, 128, 9728);  // Qwen3-4B
    else
        s.text_encoder = qwen3_config(4096, 36, 32, 8, 128, 12288);  // Qwen3-8B
    // Mistral: up to the deepest hidden layer dev reads (30 of 40), so the file holds the layers that run; the
    // Qwen3 encoders and the stand-in: every layer, as their files hold them.
    s.text_encoder_layers = {preset == "dev" && !small_text_encoder
                                 ? flux2_hidden_layers(DecoderFamily::mistral).back()
                                 : s.text_encoder["num_hidden_layers"].get<int64_t>()};
    check(s.transformer.joint_attention_dim == 3 * s.text_encoder["hidden_size"].get<int64_t>(),
          "synthetic pipeline: text encoder width does not match the transformer's context");
    s.vae = vae_config({128, 256, 512, 512}, 2);  // the FLUX.2 VAE
    s.transformer_file = "flux2-" + preset + "-synthetic-nvfp4-mixed.safetensors";
    return s;
}

void write_synthetic_pipeline(const fs::path& dir, const SyntheticPipelineSpec& s) {
    auto backend = make_backend({});
    fs::create_directories(dir / "transformer");
    fs::create_directories(dir / "vae");
    fs::create_directories(dir / "text_encoder");
    fs::create_directories(dir / "tokenizer");

    const fs::path tokenizer_src = assets_dir() / s.tokenizer;
    check(fs::exists(tokenizer_src / "tokenizer.json.gz"),
          "synthetic pipelines need the tokenizer of the source tree at ", tokenizer_src.string(),
          " (set FLUX2_ASSETS to the project's assets/ folder)");
    for (const char* f : {"tokenizer.json.gz", "tokenizer_config.json"})
        fs::copy_file(tokenizer_src / f, dir / "tokenizer" / f, fs::copy_options::overwrite_existing);

    // Text encoder: its own weight declarations drive the random generator, so the file matches what it loads.
    write_json(dir / "text_encoder" / "config.json", s.text_encoder);
    {
        RecordingRandomWeights te_weights(s.seed, s.text_encoder_nvfp4);
        const DecoderConfig dc = DecoderConfig::from_json(s.text_encoder, "synthetic text encoder");
        TextEncoder::load(te_weights, dc, s.text_encoder_layers, *backend);
        te_weights.write((dir / "text_encoder" / "model.safetensors").string());
    }
    write_json(dir / "vae" / "config.json", s.vae);
    {
        RecordingRandomWeights vae_weights(s.seed + 1);
        Flux2Vae::load(vae_weights, VaeConfig::from_json(s.vae), *backend);
        vae_weights.write((dir / "vae" / "diffusion_pytorch_model.safetensors").string());
    }
    write_synthetic_transformer((dir / "transformer" / s.transformer_file).string(), s.transformer, s.seed + 2);
    const nlohmann::json index = s.transformer.guidance_embeds
                                     ? nlohmann::json{{"_class_name", "Flux2Pipeline"}}
                                     : nlohmann::json{{"_class_name", "Flux2KleinPipeline"}, {"is_distilled", true}};
    nlohmann::json with_note = index;
    with_note["_flux2cpp_note"] = "random weights: images are noise";
    write_json(dir / "model_index.json", with_note);
}

}  // namespace flux2::cli
