#pragma once
// The server's state behind the HTTP routes: the resident engine (once loaded), the job queue whose worker runs it,
// stored images for url responses, metrics and the health state. Routes parse a request, submit it here and turn
// the finished job into a response; nothing here knows HTTP.
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/flux2_engine.h"
#include "server/image_store.h"
#include "server/job_queue.h"
#include "server/metrics.h"

namespace flux2::server {

struct ServiceOptions {
    ServerLimits limits;
    std::chrono::seconds url_ttl{600};  // --url-ttl
    size_t url_max = 64;                // --url-max
    std::string model_id;               // --model-id; empty: named after the model's path
    int default_width = 1024, default_height = 1024;
    std::string lora_dir;  // --lora-dir: where requests may load LoRA files from; empty: nowhere
};

enum class Health { loading, ok, shutting_down };
const char* health_name(Health h);

class ImageService {
public:
    explicit ImageService(ServiceOptions options);
    ~ImageService();

    // The models are loaded: requests are accepted from now on.
    void attach_engine(std::unique_ptr<Flux2Engine> engine);
    Health health() const { return health_.load(); }
    const ServiceOptions& options() const { return options_; }
    // Valid once an engine is attached.
    const ModelFacts& model() const { return model_; }
    std::chrono::system_clock::time_point ready_since() const { return ready_since_; }

    // Queues a parsed request. Throws ApiError: 503 while loading or shutting down, 429 when the queue is full.
    std::shared_ptr<Job> submit(ImageRequest request);
    // The client went away: a queued job is dropped, a running one stops at its next step.
    void cancel(const std::shared_ptr<Job>& job);

    // Stops accepting, cancels waiting jobs and waits up to `timeout` for the running one; false if it did not end.
    bool shut_down(std::chrono::milliseconds timeout);

    // LoRAs (valid once an engine is attached). Paths are relative to --lora-dir and may not leave it; an adapter
    // loaded from a path is named by that path. Errors are ApiErrors (400 / 404) naming the param.
    // `name` empty: the relative path.
    std::string load_lora(const std::string& path, const std::string& param, const std::string& name = "");
    // The adapters a request without a `lora` field runs with (--lora at start, POST /v1/set_lora).
    void set_default_loras(std::vector<std::pair<std::string, float>> active);
    std::vector<std::pair<std::string, float>> default_loras() const;
    // Every loaded adapter: name, file, format, ranks, and whether it is in the default set.
    nlohmann::json lora_listing() const;

    ImageStore& store() { return store_; }
    Metrics& metrics() { return metrics_; }
    LiveGauges live_gauges();

private:
    void run_job(Job& job);
    // Turns a request's `lora` list into (name, strength) pairs, loading files as needed.
    std::vector<std::pair<std::string, float>> resolve_loras(const ImageRequest& request);

    ServiceOptions options_;
    ModelFacts model_;
    std::unique_ptr<Flux2Engine> engine_;
    std::atomic<Health> health_{Health::loading};
    std::chrono::system_clock::time_point ready_since_{};
    std::atomic<int64_t> peak_memory_bytes_{0};
    mutable std::mutex lora_mutex_;
    std::vector<std::pair<std::string, float>> default_loras_;
    std::vector<std::pair<std::string, float>> applied_loras_;  // what the model has attached (worker only)  // read by
                                                                // /metrics without touching the worker's backend
    ImageStore store_;
    Metrics metrics_;
    JobQueue queue_;  // last: its worker uses the members above and is joined first
};

}  // namespace flux2::server
