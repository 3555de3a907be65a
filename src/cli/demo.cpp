#include "cli/demo.h"

#include <cstdlib>

#include "core/error.h"

namespace fs = std::filesystem;

namespace flux2::cli {

fs::path assets_dir() {
    if (const char* a = std::getenv("FLUX2_ASSETS"); a && *a) return a;
    return FLUX2_ASSETS_DIR;
}

namespace {
void check_pipeline_folder(const fs::path& dir, const char* from) {
    check(fs::exists(dir / "model_index.json"), "the built-in demo model is missing: no ", (dir / "model_index.json"),
          from, "; or pass --model-path");
}
}  // namespace

std::string trained_demo_model_path() {
    const fs::path dir = assets_dir() / "demo-model";
    check_pipeline_folder(dir, " (the source tree's assets/demo-model; set $FLUX2_ASSETS to where that folder is)");
    return dir.string();
}

std::string use_demo_model(ComponentArgs& c) {
    const char* env = std::getenv("FLUX2_DEMO_DIR");
    if (env && *env) {
        check_pipeline_folder(env, " (from $FLUX2_DEMO_DIR)");
        c.model_path = env;
    } else {
        c.model_path = trained_demo_model_path();
    }
    c.transformer_weights_path.clear();
    for (const auto& entry : fs::directory_iterator(c.model_path)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() && name.ends_with("-nvfp4-mixed.safetensors")) {
            c.transformer_weights_path = entry.path().string();
            break;
        }
    }
    return c.model_path;
}

std::string demo_lora_dir(const std::string& demo_folder) {
    std::error_code ec;
    const fs::path trained = assets_dir() / "demo-model";
    if (!fs::equivalent(demo_folder, trained, ec)) return "";
    const fs::path loras = assets_dir() / "demo-lora";
    return fs::is_directory(loras, ec) ? loras.string() : "";
}

}  // namespace flux2::cli
