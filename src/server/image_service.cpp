#include "server/image_service.h"

#include <filesystem>

#include "core/log.h"

namespace flux2::server {

const char* health_name(Health h) {
    switch (h) {
        case Health::loading: return "loading";
        case Health::ok: return "ok";
        case Health::shutting_down: return "shutting_down";
    }
    return "?";
}

ImageService::ImageService(ServiceOptions options)
    : options_(std::move(options)),
      store_(options_.url_ttl, options_.url_max),
      queue_(static_cast<size_t>(options_.limits.max_queue), [this](Job& job) { run_job(job); }) {}

ImageService::~ImageService() = default;

void ImageService::attach_engine(std::unique_ptr<Flux2Engine> engine) {
    engine_ = std::move(engine);
    model_.id = options_.model_id;
    if (model_.id.empty()) {
        // A pipeline folder is named by its folder, a transformer file by its stem.
        std::filesystem::path p(engine_->paths().transformer);
        if (p.filename() == "transformer") p = p.parent_path();
        model_.id = p.has_extension() ? p.stem().string() : p.filename().string();
    }
    model_.true_cfg = engine_->has_true_cfg();
    model_.default_width = options_.default_width;
    model_.default_height = options_.default_height;
    peak_memory_bytes_ = engine_->backend().peak_memory_bytes();
    ready_since_ = std::chrono::system_clock::now();
    Health expected = Health::loading;
    health_.compare_exchange_strong(expected, Health::ok);
}

std::shared_ptr<Job> ImageService::submit(ImageRequest request) {
    const Health h = health_.load();
    if (h != Health::ok) {
        ApiError e(503, "server_error", h == Health::loading ? "model_loading" : "shutting_down", "",
                   h == Health::loading ? "the model is still loading; retry when /health says ok"
                                        : "the server is shutting down");
        e.retry_after_seconds = h == Health::loading ? 10 : 5;
        throw e;
    }
    return queue_.submit(random_id("imgreq_"), std::move(request));
}

void ImageService::cancel(const std::shared_ptr<Job>& job) {
    const JobState s = job->state();
    if (s != JobState::queued && s != JobState::running) return;
    queue_.cancel(job);
    metrics_.count_cancelled();
    log_info("job ", job->id, " cancelled: the client went away while it was ", job_state_name(s));
}

bool ImageService::shut_down(std::chrono::milliseconds timeout) {
    health_ = Health::shutting_down;
    return queue_.close_and_drain(timeout);
}

LiveGauges ImageService::live_gauges() {
    LiveGauges g;
    g.queue_depth = queue_.waiting();
    g.job_running = queue_.busy();
    g.device_memory_peak_bytes = peak_memory_bytes_.load();
    g.stored_images = store_.size();
    g.ready = health_.load() == Health::ok;
    return g;
}

void ImageService::run_job(Job& job) {
    const auto start = Job::Clock::now();
    EngineResult result = engine_->generate(job.request.engine, [&](const StepProgress& p) {
        metrics_.observe_step(p.step_seconds);
        job.add_progress({p.step, p.total, std::chrono::duration<double>(Job::Clock::now() - start).count()});
        if (job.cancel_requested()) throw JobCancelled{};
    });
    peak_memory_bytes_ = result.peak_memory_bytes;
    metrics_.count_images(static_cast<int64_t>(result.images.size()));
    job.finish(std::move(result));
}

}  // namespace flux2::server
