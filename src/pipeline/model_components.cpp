#include "pipeline/model_components.h"

#include <filesystem>
#include <fstream>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/hf_cache.h"

namespace fs = std::filesystem;

namespace flux2 {

namespace {
bool has_safetensors(const fs::path& dir) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".safetensors" || e.path().string().ends_with(".safetensors.index.json"))
            return true;
    return false;
}

std::optional<nlohmann::json> read_json(const fs::path& p) {
    std::ifstream f(p);
    if (!f) return std::nullopt;
    try {
        return nlohmann::json::parse(f);
    } catch (const nlohmann::json::exception& e) {
        fail(p.string(), ": invalid JSON: ", e.what());
    }
}

// Fills whatever of vae / text encoder / tokenizer `root` provides and `out` still lacks; records where it looked.
void take_components(const fs::path& root, ComponentPaths& out, std::vector<std::string>& looked) {
    std::error_code ec;
    if (out.vae.empty()) {
        if (fs::is_directory(root / "vae", ec)) out.vae = (root / "vae").string();
        else if (fs::exists(root / "ae.safetensors", ec)) out.vae = (root / "ae.safetensors").string();
        else looked.push_back("VAE: " + (root / "vae").string() + " or " + (root / "ae.safetensors").string());
    }
    if (out.text_encoder.empty()) {
        if (fs::is_directory(root / "text_encoder", ec)) out.text_encoder = (root / "text_encoder").string();
        else looked.push_back("text encoder: " + (root / "text_encoder").string());
    }
    if (out.tokenizer.empty() && fs::is_directory(root / "tokenizer", ec)) out.tokenizer = (root / "tokenizer").string();
}
}  // namespace

std::string find_tokenizer_for(const std::string& text_encoder_dir) {
    const fs::path te(text_encoder_dir);
    std::error_code ec;
    if (fs::exists(te / "tokenizer.json", ec) || fs::exists(te / "tokenizer.json.gz", ec)) return te.string();
    if (fs::is_directory(te.parent_path() / "tokenizer", ec)) return (te.parent_path() / "tokenizer").string();
    return {};
}

std::string ComponentPaths::describe() const {
    return str("transformer ", transformer, "; VAE ", vae.empty() ? "(none)" : vae, "; text encoder ",
               text_encoder.empty() ? "(none)" : text_encoder);
}

ComponentPaths resolve_components(const ComponentArgs& args, bool needs_text_encoder, bool needs_vae) {
    ComponentPaths out;
    std::vector<std::string> looked;
    std::error_code ec;
    check(!args.model_path.empty() || !args.transformer_weights_path.empty(),
          "no model given: pass --model-path (a local folder/file or a Hugging Face repo id in the local cache)");

    bool self_contained = false;
    if (!args.model_path.empty()) {
        const fs::path root = resolve_local_or_cached(args.model_path, "--model-path");
        if (fs::is_regular_file(root, ec)) {
            out.transformer = root.string();
        } else if (fs::is_directory(root / "transformer", ec) || fs::exists(root / "model_index.json", ec)) {
            out.transformer = (root / "transformer").string();
            out.model_index = read_json(root / "model_index.json");
            take_components(root, out, looked);
            self_contained = true;
        } else if (has_safetensors(root)) {
            out.transformer = root.string();  // transformer-only repo (e.g. FLUX.2-dev-NVFP4) or diffusers transformer/
        } else {
            fail("--model-path ", root.string(), " holds neither a diffusers pipeline (model_index.json, transformer/) "
                 "nor transformer weights (*.safetensors)");
        }
    }
    if (!args.transformer_weights_path.empty()) {
        out.transformer = resolve_local_or_cached(args.transformer_weights_path, "--transformer-weights-path");
        out.model_index.reset();  // it describes the pipeline's own transformer, not this one
    }
    if (!args.vae_path.empty()) out.vae = resolve_local_or_cached(args.vae_path, "--vae-path");
    if (!args.text_encoder_path.empty()) {
        const fs::path te = resolve_local_or_cached(args.text_encoder_path, "--text-encoder");
        out.text_encoder = te.string();
        out.tokenizer = find_tokenizer_for(out.text_encoder);
    }

    const bool missing = (needs_vae && out.vae.empty()) || (needs_text_encoder && out.text_encoder.empty());
    if (missing && !self_contained) {
        std::string looked_in;
        const bool local = fs::exists(args.base_model_path, ec);
        std::optional<std::string> base =
            local ? std::optional<std::string>(args.base_model_path) : find_cached_snapshot(args.base_model_path, &looked_in);
        if (base) {
            log_info("taking missing components from the base model ", *base);
            take_components(*base, out, looked);
        } else {
            looked.push_back("base model " + args.base_model_path + " (not found" +
                             (looked_in.empty() ? "" : " in " + looked_in) + ")");
        }
    }
    if (out.tokenizer.empty() && !out.text_encoder.empty()) out.tokenizer = find_tokenizer_for(out.text_encoder);

    std::string problems;
    if (needs_vae && out.vae.empty()) problems += "\n  - no VAE";
    if (needs_text_encoder && out.text_encoder.empty())
        problems += "\n  - no text encoder (needed for --prompt; or pass --prompt-embeds)";
    if (needs_text_encoder && !out.text_encoder.empty() && out.tokenizer.empty())
        problems += "\n  - no tokenizer for the text encoder " + out.text_encoder;
    if (!problems.empty()) {
        std::string where;
        for (const auto& l : looked) where += "\n  looked for " + l;
        fail("missing pipeline components:", problems, where,
             "\n  (use --base-model-path, --vae-path or --text-encoder to point at them)");
    }
    return out;
}

}  // namespace flux2
