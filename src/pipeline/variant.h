#pragma once
// Which FLUX.2 pipeline a transformer runs (dev, klein distilled, klein base), decided once for `generate` and
// `serve` alike.
#include <string>

#include "models/flux2/flux2_config.h"
#include "pipeline/flux2_pipeline.h"
#include "pipeline/model_components.h"

namespace flux2 {

// mode: "auto", "distilled" or "base" (--klein-mode). auto: is_distilled of the pipeline's model_index.json, else
// base when a part of the transformer's path names klein-base (BFL's naming), else distilled.
Flux2Variant pick_variant(const Flux2Config& config, const ComponentPaths& paths, const std::string& mode);

}  // namespace flux2
