#pragma once
// The built-in demo model behind `flux2 generate` / `serve` with no --model-path: a small klein-base FLUX.2 trained
// on generated scenes of coloured shapes (docs/DEMO_MODEL.md), committed in assets/demo-model in the real on-disk
// formats (diffusers folders and a BFL NVFP4-mixed transformer file).
#include <filesystem>
#include <string>

#include "pipeline/model_components.h"

namespace flux2::cli {

// The project's assets/ folder: $FLUX2_ASSETS, else the source tree the binary was built from. It holds the trained
// demo model, the Qwen3 tokenizer and the prompt list of `flux2 eval`.
std::filesystem::path assets_dir();

// The trained demo model's folder, assets/demo-model (what `flux2 eval` scores); fails saying where it looked.
std::string trained_demo_model_path();

// Points `c` at the demo (`generate` / `serve` with no --model-path) and returns its folder: $FLUX2_DEMO_DIR when
// set (any pipeline folder, e.g. a tiny random one written by `flux2 bench --save-pipeline DIR --model tiny` for
// quick smoke runs), else the trained model. Its transformer is the folder's NVFP4-mixed file when it has one (the
// trained model's), so the first run shows the NVFP4 path; else the folder's own transformer.
std::string use_demo_model(ComponentArgs& c);

// The demo LoRA's folder (assets/demo-lora: one striped-background adapter in four layouts, docs/DEMO_MODEL.md) when
// `demo_folder` is the trained demo model and the folder exists; else empty. `serve` makes it the default --lora-dir.
std::string demo_lora_dir(const std::string& demo_folder);

// The trained model's image size and a prompt it draws (it knows only this scene vocabulary).
constexpr int kDemoImageSize = 128;
constexpr const char* kDemoPrompt =
    "a large red circle on the left and a small blue square at the top right, on a yellow background";

}  // namespace flux2::cli
