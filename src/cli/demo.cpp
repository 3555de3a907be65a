#include "cli/demo.h"

#include <cstdlib>

#include "core/error.h"

namespace fs = std::filesystem;

namespace flux2::cli {

fs::path assets_dir() {
    if (const char* a = std::getenv("FLUX2_ASSETS"); a && *a) return a;
    return FLUX2_ASSETS_DIR;
}

std::string demo_model_path() {
    const char* env = std::getenv("FLUX2_DEMO_DIR");
    const fs::path dir = env && *env ? fs::path(env) : assets_dir() / "demo-model";
    check(fs::exists(dir / "model_index.json"), "the built-in demo model is missing: no ", (dir / "model_index.json"),
          env && *env ? " (from $FLUX2_DEMO_DIR)"
                      : " (the source tree's assets/demo-model; set $FLUX2_ASSETS to where that folder is)",
          "; or pass --model-path");
    return dir.string();
}

std::string demo_transformer_path(const std::string& demo) {
    for (const auto& entry : fs::directory_iterator(demo)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file() && name.ends_with("-nvfp4-mixed.safetensors")) return entry.path().string();
    }
    return "";
}

}  // namespace flux2::cli
