#pragma once
// The built-in demo model set behind `flux2 generate` with no --model-path: a small klein-style FLUX.2 with
// deterministic random weights in the real on-disk formats — a BFL NVFP4-mixed transformer file, a diffusers
// vae/ folder, a Qwen3-style text_encoder/ with the real Qwen3 tokenizer — created once in a cache folder.
#include <filesystem>
#include <string>

namespace flux2::cli {

// The demo folder ($FLUX2_DEMO_DIR, else $XDG_CACHE_HOME/flux2cpp/demo-v2, else ~/.cache/flux2cpp/demo-v2),
// created on first use. A diffusers-style layout: model_index.json, transformer/, vae/, text_encoder/, tokenizer/.
std::string ensure_demo_model();

// The project's assets/ folder: $FLUX2_ASSETS, else the source tree the binary was built from. It holds the Qwen3
// tokenizer the random demo copies, the trained demo model and the prompt list of `flux2 eval`.
std::filesystem::path assets_dir();

// Default image side for the demo model (small enough for a CPU), used by `generate` and `serve`.
constexpr int kDemoImageSize = 256;

}  // namespace flux2::cli
