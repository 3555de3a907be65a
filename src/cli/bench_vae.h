#pragma once
// `flux2 bench --vae`: the VAE decode alone at each resolution, whole and in tiles (pipeline/vae_tiling.h): time,
// peak memory and how far the tiled image is from the whole one. Each run gets a fresh backend, so each peak is its
// own (on a GPU; the CPU's resident-set peak only grows).
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace flux2::cli {

struct VaeBench {
    std::string vae;  // a VAE folder or BFL ae.safetensors, or "random": the FLUX.2 VAE with random weights
    BackendOptions backend;
    std::vector<int> resolutions;
    int repeats = 3;  // timed decodes per run, after one untimed
    uint64_t seed = 0;
};

void run_vae_bench(const VaeBench& b);

}  // namespace flux2::cli
