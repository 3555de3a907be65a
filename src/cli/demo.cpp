#include "cli/demo.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_config.h"
#include "models/flux2/flux2_synthetic.h"
#include "models/recording_random_weights.h"
#include "models/text_encoder/text_encoder.h"
#include "models/vae/vae.h"

namespace fs = std::filesystem;

namespace flux2::cli {

namespace {
constexpr uint64_t kSeed = 20261128;

fs::path demo_dir() {
    if (const char* d = std::getenv("FLUX2_DEMO_DIR"); d && *d) return d;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "flux2cpp" / "demo-v1";
    const char* home = std::getenv("HOME");
    return fs::path(home ? home : "/tmp") / ".cache" / "flux2cpp" / "demo-v1";
}

fs::path assets_dir() {
    if (const char* a = std::getenv("FLUX2_ASSETS"); a && *a) return a;
    return FLUX2_ASSETS_DIR;
}

void write_json(const fs::path& path, const nlohmann::json& j) {
    std::ofstream f(path);
    check(static_cast<bool>(f), "cannot write ", path.string());
    f << j.dump(1) << "\n";
}

// A klein-style transformer small enough for a CPU: D = 256 (4 heads x 64), 2 double + 4 single blocks.
Flux2Config demo_transformer_config(int64_t context_dim) {
    Flux2Config c;
    c.num_layers = 2;
    c.num_single_layers = 4;
    c.attention_head_dim = 64;
    c.num_attention_heads = 4;
    c.axes_dims_rope = {16, 16, 16, 16};
    c.joint_attention_dim = context_dim;
    c.guidance_embeds = false;
    return c;
}

// Qwen3-shaped with 28 layers, so klein's layers 9, 18, 27 exist, but only 64 wide.
nlohmann::json demo_text_encoder_config() {
    return {{"architectures", {"Qwen3ForCausalLM"}},
            {"model_type", "qwen3"},
            {"vocab_size", 151936},
            {"hidden_size", 64},
            {"intermediate_size", 128},
            {"num_hidden_layers", 28},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"head_dim", 16},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 1000000.0},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", true},
            {"max_position_embeddings", 40960}};
}

nlohmann::json demo_vae_config() {
    return {{"_class_name", "AutoencoderKLFlux2"},
            {"in_channels", 3},
            {"out_channels", 3},
            {"block_out_channels", {32, 32, 64, 64}},
            {"layers_per_block", 1},
            {"latent_channels", 32},
            {"norm_num_groups", 32},
            {"batch_norm_eps", 1e-4},
            {"patch_size", {2, 2}}};
}

void build_demo(const fs::path& dir) {
    auto backend = make_backend({});
    fs::create_directories(dir / "transformer");
    fs::create_directories(dir / "vae");
    fs::create_directories(dir / "text_encoder");
    fs::create_directories(dir / "tokenizer");

    const fs::path tokenizer_src = assets_dir() / "qwen3-tokenizer";
    check(fs::exists(tokenizer_src / "tokenizer.json.gz"), "the demo needs the Qwen3 tokenizer of the source tree at ",
          tokenizer_src.string(), " (set FLUX2_ASSETS to the project's assets/ folder)");
    for (const char* f : {"tokenizer.json.gz", "tokenizer_config.json"})
        fs::copy_file(tokenizer_src / f, dir / "tokenizer" / f, fs::copy_options::overwrite_existing);

    // Text encoder: its own weight declarations drive the random generator, so the file matches what it loads.
    const nlohmann::json te_config = demo_text_encoder_config();
    write_json(dir / "text_encoder" / "config.json", te_config);
    {
        RecordingRandomWeights te_weights(kSeed);
        DecoderConfig dc = DecoderConfig::from_json(te_config, "demo text encoder");
        TextEncoder::load(te_weights, dc, {9, 18, 27, dc.num_hidden_layers}, *backend);
        te_weights.write((dir / "text_encoder" / "model.safetensors").string());
    }

    const nlohmann::json vae_config = demo_vae_config();
    write_json(dir / "vae" / "config.json", vae_config);
    {
        RecordingRandomWeights vae_weights(kSeed + 1);
        Flux2Vae::load(vae_weights, VaeConfig::from_json(vae_config), *backend);
        vae_weights.write((dir / "vae" / "diffusion_pytorch_model.safetensors").string());
    }

    const int64_t context_dim = 3 * te_config["hidden_size"].get<int64_t>();
    write_synthetic_transformer((dir / "transformer" / "flux2-demo-nvfp4-mixed.safetensors").string(),
                                demo_transformer_config(context_dim), kSeed + 2);
    write_json(dir / "model_index.json", {{"_class_name", "Flux2KleinPipeline"},
                                          {"is_distilled", true},
                                          {"_flux2cpp_note", "random demo weights: images are noise"}});
}
}  // namespace

std::string ensure_demo_model() {
    const fs::path dir = demo_dir();
    if (fs::exists(dir / "model_index.json")) return dir.string();
    log_info("creating the demo model set in ", dir.string(), " (once)");
    // Build beside the final folder and rename, so an interrupted build never looks complete.
    const fs::path tmp = dir.string() + ".tmp-" + std::to_string(getpid());
    fs::remove_all(tmp);
    try {
        build_demo(tmp);
        fs::create_directories(dir.parent_path());
        fs::remove_all(dir);
        fs::rename(tmp, dir);
    } catch (...) {
        std::error_code ignored;
        fs::remove_all(tmp, ignored);
        throw;
    }
    return dir.string();
}

}  // namespace flux2::cli
