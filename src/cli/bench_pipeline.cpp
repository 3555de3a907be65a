#include "cli/bench_pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "core/timing.h"
#include "io/page_cache.h"
#include "pipeline/flux2_engine.h"

namespace flux2::cli {

std::string attention_label(const std::string& attention) {
    return attention.empty() || attention == "auto" ? "" : "/attn-" + attention;
}

namespace {

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// A prompt of ordinary length (about 20 tokens); the text encoder runs over the padded 512 tokens anyway.
constexpr const char* kPrompt = "a lighthouse on a rocky coast at dusk, waves breaking, warm light in the windows";

// GB with two decimals, or "-" where the backend has no device figure (-1).
std::string device_gb(int64_t bytes) {
    if (bytes < 0) return "-";
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", bytes / 1e9);
    return text;
}

}  // namespace

void run_pipeline_bench(const PipelineBench& b) {
    check(!b.resolutions.empty(), "--resolutions: give at least one size");
    check(b.repeats >= 1, "--repeat must be at least 1, got ", b.repeats);
    for (const int r : b.resolutions)
        check(r >= 16 && r % 16 == 0, "--resolutions: sizes must be multiples of 16, got ", r);
    // Peaks per phase (each counts what earlier phases left: weights, a recorded step's memory) and overall; then
    // the device's used memory as the driver sees it (EngineResult::device_used_bytes): what the card must hold.
    std::printf("%-6s %-6s %5s %9s %10s %9s %9s %9s %10s %10s %10s %10s %10s %10s\n", "path", "res", "steps", "load s",
                "encode s", "denoise s", "s/step", "decode s", "total s", "peak GB", "enc GB", "denoise GB",
                "decode GB", "device GB");
    for (const BackendOptions& path : b.paths) {
        EngineOptions options;
        options.components.model_path = b.folder;
        options.backend = path;
        options.text_encoder_weights = b.text_encoder_weights;
        options.offload = b.offload;
        options.resident_budget_bytes = b.resident_budget_bytes;
        options.stream_e4m3 = b.stream_e4m3;
        if (b.cold) {
            // A load from the disk, as after a reboot; the row then shows one from the page cache, as on the next
            // start.
            drop_from_page_cache(b.folder);
            const PageCacheState before = page_cache_state(b.folder);
            const auto c0 = std::chrono::steady_clock::now();
            Flux2Engine::load(options);
            std::printf("cold load: %.2f s (%.1f%% of the folder's %.2f GB in the page cache when it started)\n",
                        seconds_since(c0), 100.0 * before.cached_fraction(), before.bytes / 1e9);
            std::fflush(stdout);
        }
        const auto t0 = std::chrono::steady_clock::now();
        const auto engine = Flux2Engine::load(options);
        const double load = seconds_since(t0);
        const double loaded_gb = engine->backend().peak_memory_bytes() / 1e9;
        // The device's used memory now: the weights loaded so far plus the CUDA context and libraries.
        const std::string loaded_device = device_gb(engine->backend().device_memory_used_bytes());
        std::string label = path.precision.empty() ? engine->backend().name() : path.precision;
        label += attention_label(path.attention);
        if (engine->offload() != Offload::none) label += str("/", offload_name(engine->offload()));
        std::printf("%-6s %-6s %5s %9.2f %10s %9s %9s %9s %10s %10.2f %10s %10s %10s %10s  (after loading)\n",
                    label.c_str(), "-", "-", load, "-", "-", "-", "-", "-", loaded_gb, "-", "-", "-",
                    loaded_device.c_str());
        std::fflush(stdout);
        for (const int res : b.resolutions) {
            EngineRequest request;
            request.prompt = kPrompt;
            request.width = request.height = res;
            request.num_steps = b.steps;
            request.seed = b.seed;
            log_info("pipeline bench: ", res, "x", res, ", one untimed image, then ", b.repeats, " timed");
            engine->generate(request);
            std::vector<double> encode, denoise, decode, total;
            std::string why_not;
            std::unique_ptr<ActivityMonitor> monitor = engine->backend().monitor_activity(why_not);
            int steps = 0;
            int64_t peak = 0, encode_peak = 0, denoise_peak = 0, decode_peak = 0, device_used = -1;
            for (int i = 0; i < b.repeats; ++i) {
                const auto t = std::chrono::steady_clock::now();
                const EngineResult r = engine->generate(request);
                total.push_back(seconds_since(t));
                encode.push_back(r.text_encoder_seconds);
                denoise.push_back(r.denoise_seconds);
                decode.push_back(r.decode_seconds);
                steps = r.num_steps;
                peak = std::max(peak, r.peak_memory_bytes);
                encode_peak = std::max(encode_peak, r.encode_peak_bytes);
                denoise_peak = std::max(denoise_peak, r.denoise_peak_bytes);
                decode_peak = std::max(decode_peak, r.decode_peak_bytes);
                device_used = std::max(device_used, r.device_used_bytes);
            }
            // The clock and energy over the timed images (flux2 bench's step rows print the same); none on the CPU.
            const std::string device = activity_line(monitor.get(), why_not, b.repeats, "image");
            const double d = median(denoise);
            std::printf("%-6s %-6d %5d %9s %10.3f %9.3f %9.4f %9.3f %10.3f %10.2f %10.2f %10.2f %10.2f %10s\n",
                        label.c_str(), res, steps, "-", median(encode), d, d / std::max(1, steps), median(decode),
                        median(total), peak / 1e9, encode_peak / 1e9, denoise_peak / 1e9, decode_peak / 1e9,
                        device_gb(device_used).c_str());
            if (!device.empty()) std::printf("  device over the %d timed images: %s\n", b.repeats, device.c_str());
            std::fflush(stdout);
        }
    }
}

}  // namespace flux2::cli
