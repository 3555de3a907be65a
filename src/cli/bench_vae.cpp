#include "cli/bench_vae.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli/relative_difference.h"
#include "cli/synthetic_pipeline.h"
#include "core/error.h"
#include "core/normal_rng.h"
#include "core/timing.h"
#include "models/recording_random_weights.h"
#include "models/vae/vae.h"
#include "pipeline/vae_tiling.h"

namespace flux2::cli {

namespace {

Flux2Vae load_vae(const VaeBench& b, Backend& backend) {
    if (b.vae != "random") return Flux2Vae::load(b.vae, backend);
    RecordingRandomWeights weights(b.seed);
    return Flux2Vae::load(weights, VaeConfig::from_json(real_size_pipeline_spec("klein-4b", b.seed).vae), backend);
}

struct Run {
    double seconds = 0;  // median
    double peak_gb = 0;
    std::vector<float> image;
    std::string failure;
};

// One mode at one size on a fresh backend: an untimed decode (plans, tuning), then the timed ones.
Run decode_run(const VaeBench& b, const Tensor& z, bool tiled) {
    Run run;
    try {
        auto backend = make_backend(b.backend);
        const Flux2Vae vae = load_vae(b, *backend);
        auto decode = [&] { return tiled ? decode_tiled(vae, z, VaeTiling{}) : vae.decode(z); };
        run.image = decode().to_vector();
        std::vector<double> times;
        for (int i = 0; i < b.repeats; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            decode();
            times.push_back(seconds_since(t0));
        }
        std::sort(times.begin(), times.end());
        run.seconds = times[times.size() / 2];
        run.peak_gb = backend->peak_memory_bytes() / 1e9;
    } catch (const std::exception& e) {
        const std::string what = e.what();
        run.failure = what.substr(0, what.find('\n'));
    }
    return run;
}

}  // namespace

void run_vae_bench(const VaeBench& b) {
    check(!b.resolutions.empty(), "--resolutions: give at least one size");
    check(b.repeats >= 1, "--repeat must be at least 1, got ", b.repeats);
    check(b.vae == "random" || std::filesystem::exists(b.vae), "--vae ", b.vae,
          ": no such file or folder (a VAE folder, ae.safetensors, or 'random')");
    for (const int r : b.resolutions)
        check(r >= 16 && r % 16 == 0, "--resolutions: sizes must be multiples of 16, got ", r);
    std::printf("%-6s %-8s %10s %10s %14s  %s\n", "res", "decode", "s", "peak GB", "rel vs whole", "tiles");
    for (const int res : b.resolutions) {
        const int64_t h = res / 8;
        Tensor z = Tensor::zeros({1, 32, h, h});
        fill_normal(z.f32(), z.numel(), b.seed + 1, 0.0f, 1.0f);
        const VaeTiling tiling;
        const std::vector<int64_t> starts = tile_starts(h, tiling.tile, tiling.overlap);
        const std::string tiles = str(starts.size(), "x", starts.size(), " of ", tiling.tile * 8, " px");
        std::optional<Run> whole;
        for (const bool tiled : {false, true}) {
            const Run run = decode_run(b, z, tiled);
            std::string rel = "-";
            if (tiled && whole && whole->failure.empty() && run.failure.empty())
                rel = str(relative_difference(run.image, whole->image));
            if (run.failure.empty()) {
                std::printf("%-6d %-8s %10.3f %10.2f %14s  %s\n", res, tiled ? "tiled" : "whole", run.seconds,
                            run.peak_gb, rel.c_str(), tiled ? tiles.c_str() : "");
            } else {
                std::printf("%-6d %-8s failed: %s\n", res, tiled ? "tiled" : "whole", run.failure.c_str());
            }
            std::fflush(stdout);
            if (!tiled) whole = run;
        }
    }
}

}  // namespace flux2::cli
