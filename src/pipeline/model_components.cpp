#include "pipeline/model_components.h"

#include <algorithm>
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

// ComfyUI's models/ folder keeps one file per component in per-kind folders; the second names are the older ones
// ComfyUI still reads (folder_paths.py maps "diffusion_models" to unet/ too and "text_encoders" to clip/).
const std::vector<std::string> kComfyTransformerDirs = {"diffusion_models", "unet"};
const std::vector<std::string> kComfyTextEncoderDirs = {"text_encoders", "clip"};
const std::vector<std::string> kComfyVaeDirs = {"vae"};

bool any_directory(const fs::path& root, const std::vector<std::string>& names) {
    std::error_code ec;
    for (const auto& n : names)
        if (fs::is_directory(root / n, ec)) return true;
    return false;
}

// A ComfyUI models/ folder (or the split_files/ of ComfyUI's Hugging Face repos): diffusion_models/ or
// text_encoders/ beside each other. A diffusers vae/ alone does not make one.
bool is_comfy_root(const fs::path& dir) {
    return any_directory(dir, kComfyTransformerDirs) || any_directory(dir, kComfyTextEncoderDirs);
}

// The ComfyUI root of a transformer file in its diffusion_models/ (or unet/) folder, if it is one.
std::optional<fs::path> comfy_root_of_file(const fs::path& file) {
    const fs::path dir = file.parent_path();
    const std::string name = dir.filename().string();
    if (std::find(kComfyTransformerDirs.begin(), kComfyTransformerDirs.end(), name) == kComfyTransformerDirs.end())
        return std::nullopt;
    if (!is_comfy_root(dir.parent_path())) return std::nullopt;
    return dir.parent_path();
}

// The one .safetensors file in root/<dir> for the first of `dirs` that has any. Several are ambiguous (a ComfyUI
// folder often holds other models' files too): when the component is needed that throws, listing them and the flag
// that picks one; otherwise it stays unresolved.
std::string single_comfy_file(const fs::path& root, const std::vector<std::string>& dirs, const std::string& what,
                              const std::string& flag, bool needed) {
    for (const auto& d : dirs) {
        std::vector<std::string> files;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(root / d, ec))
            if (e.path().extension() == ".safetensors") files.push_back(e.path().filename().string());
        if (files.empty()) continue;
        if (files.size() > 1 && !needed) return {};
        std::sort(files.begin(), files.end());
        std::string list;
        for (const auto& f : files) list += "\n  " + (root / d / f).string();
        check(files.size() == 1, "ComfyUI folder ", root.string(), ": ", files.size(), " ", what, " files in ", d,
              "/, expected one:", list, "\n  (pick one with ", flag, ")");
        return (root / d / files.front()).string();
    }
    return {};
}

std::string comfy_dirs(const fs::path& root, const std::vector<std::string>& dirs) {
    std::string out;
    for (const auto& d : dirs) out += (out.empty() ? "" : " or ") + (root / d).string() + "/*.safetensors";
    return out;
}

struct Needs {
    bool text_encoder, vae;
};

// Fills whatever of vae / text encoder / tokenizer `root` provides and `out` still lacks; records where it looked.
void take_components(const fs::path& root, const Needs& needs, ComponentPaths& out, std::vector<std::string>& looked) {
    std::error_code ec;
    if (is_comfy_root(root)) {
        // ComfyUI ships no tokenizer: it stays missing here and comes from the base model like any other part.
        if (out.vae.empty()) out.vae = single_comfy_file(root, kComfyVaeDirs, "VAE", "--vae-path", needs.vae);
        if (out.vae.empty()) looked.push_back("VAE: " + comfy_dirs(root, kComfyVaeDirs));
        if (out.text_encoder.empty())
            out.text_encoder = single_comfy_file(root, kComfyTextEncoderDirs, "text encoder", "--text-encoder",
                                                 needs.text_encoder);
        if (out.text_encoder.empty()) looked.push_back("text encoder: " + comfy_dirs(root, kComfyTextEncoderDirs));
        return;
    }
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

    const Needs needs{needs_text_encoder, needs_vae};
    // Explicit paths first: what a folder provides only fills the rest, and an ambiguous folder does not stop a
    // component the user named.
    if (!args.vae_path.empty()) out.vae = resolve_local_or_cached(args.vae_path, "--vae-path");
    if (!args.text_encoder_path.empty()) {
        const fs::path te = resolve_local_or_cached(args.text_encoder_path, "--text-encoder");
        out.text_encoder = te.string();
        out.tokenizer = find_tokenizer_for(out.text_encoder);
    }
    bool self_contained = false;
    if (!args.model_path.empty()) {
        const fs::path root = resolve_local_or_cached(args.model_path, "--model-path");
        const fs::path comfy = is_comfy_root(root / "split_files") ? root / "split_files" : root;
        if (fs::is_regular_file(root, ec)) {
            out.transformer = root.string();
            if (const auto comfy_root = comfy_root_of_file(root)) take_components(*comfy_root, needs, out, looked);
        } else if (is_comfy_root(comfy)) {
            out.transformer =
                single_comfy_file(comfy, kComfyTransformerDirs, "diffusion model", "--model-path <that file>", true);
            check(!out.transformer.empty(), "--model-path ", comfy.string(), " is a ComfyUI models folder without a "
                  "FLUX.2 transformer: expected one .safetensors file in ", comfy_dirs(comfy, kComfyTransformerDirs));
            take_components(comfy, needs, out, looked);
        } else if (fs::is_directory(root / "transformer", ec) || fs::exists(root / "model_index.json", ec)) {
            out.transformer = (root / "transformer").string();
            out.model_index = read_json(root / "model_index.json");
            take_components(root, needs, out, looked);
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

    if (out.tokenizer.empty() && !out.text_encoder.empty()) out.tokenizer = find_tokenizer_for(out.text_encoder);
    // A text encoder without a tokenizer (ComfyUI's single files) takes the base model's, as the other parts do.
    const bool missing = (needs_vae && out.vae.empty()) || (needs_text_encoder && out.text_encoder.empty()) ||
                         (needs_text_encoder && out.tokenizer.empty());
    if (missing && !self_contained) {
        std::string looked_in;
        const bool local = fs::exists(args.base_model_path, ec);
        std::optional<std::string> base =
            local ? std::optional<std::string>(args.base_model_path) : find_cached_snapshot(args.base_model_path, &looked_in);
        if (base) {
            log_info("taking missing components from the base model ", *base);
            take_components(*base, needs, out, looked);
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
