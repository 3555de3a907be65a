#pragma once
// The VAE's BatchNorm statistics over patchified latents (bn.running_mean / bn.running_var, no affine). FLUX.2
// never runs this BatchNorm as a layer: the pipeline normalizes encoded reference latents with it and
// de-normalizes generated latents before decoding (pipeline/latents.h).
#include "tensor/tensor.h"

namespace flux2 {

struct LatentBatchNorm {
    Tensor running_mean;  // [128] host F32
    Tensor running_var;   // [128] host F32
    float eps = 1e-4f;    // the VAE config's batch_norm_eps
};

}  // namespace flux2
