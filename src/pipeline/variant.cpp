#include "pipeline/variant.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/error.h"

namespace fs = std::filesystem;

namespace flux2 {

namespace {
// BFL names base models "klein-base" (FLUX.2-klein-base-4B, flux-2-klein-base-4b.safetensors). Only path parts that
// also say "klein" count, so that a folder such as /data/database does not turn a distilled model into a base one.
bool names_klein_base(const std::string& path) {
    for (const fs::path& part : fs::path(path)) {
        std::string s = part.string();
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
        if (s.find("klein") != std::string::npos && s.find("base") != std::string::npos) return true;
    }
    return false;
}
}  // namespace

Flux2Variant pick_variant(const Flux2Config& config, const ComponentPaths& paths, const std::string& mode) {
    if (config.guidance_embeds) {
        check(mode == "auto", "--klein-mode applies to klein models; this transformer is FLUX.2 dev");
        return Flux2Variant::dev;
    }
    if (mode == "distilled") return Flux2Variant::klein_distilled;
    if (mode == "base") return Flux2Variant::klein_base;
    check(mode == "auto", "--klein-mode must be auto, distilled or base, got '", mode, "'");
    // diffusers' Flux2KleinPipeline reads is_distilled from model_index.json.
    if (paths.model_index && paths.model_index->contains("is_distilled")) {
        const nlohmann::json& d = (*paths.model_index)["is_distilled"];
        check(d.is_boolean(), "model_index.json: is_distilled must be true or false, got ", d.dump());
        return d.get<bool>() ? Flux2Variant::klein_distilled : Flux2Variant::klein_base;
    }
    return names_klein_base(paths.transformer) ? Flux2Variant::klein_base : Flux2Variant::klein_distilled;
}

}  // namespace flux2
