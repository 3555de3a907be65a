#include "cli/demo.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "cli/synthetic_pipeline.h"
#include "core/error.h"
#include "core/log.h"

namespace fs = std::filesystem;

namespace flux2::cli {

namespace {
fs::path demo_dir() {
    if (const char* d = std::getenv("FLUX2_DEMO_DIR"); d && *d) return d;
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return fs::path(x) / "flux2cpp" / "demo-v2";
    const char* home = std::getenv("HOME");
    return fs::path(home ? home : "/tmp") / ".cache" / "flux2cpp" / "demo-v2";
}

}  // namespace

fs::path assets_dir() {
    if (const char* a = std::getenv("FLUX2_ASSETS"); a && *a) return a;
    return FLUX2_ASSETS_DIR;
}

std::string ensure_demo_model() {
    const fs::path dir = demo_dir();
    if (fs::exists(dir / "model_index.json")) return dir.string();
    log_info("creating the demo model set in ", dir.string(), " (once)");
    // Build beside the final folder and rename, so an interrupted build never looks complete.
    const fs::path tmp = dir.string() + ".tmp-" + std::to_string(getpid());
    fs::remove_all(tmp);
    try {
        write_synthetic_pipeline(tmp, demo_pipeline_spec());
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
