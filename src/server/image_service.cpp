#include "server/image_service.h"

#include <filesystem>

#include "core/log.h"
#include "models/lora/lora_registry.h"

namespace flux2::server {

const char* health_name(Health h) {
    switch (h) {
        case Health::loading:
            return "loading";
        case Health::ok:
            return "ok";
        case Health::shutting_down:
            return "shutting_down";
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
    for (const ActiveLora& a : engine_->active_loras()) default_loras_.emplace_back(a.name, a.strength);
    applied_loras_ = default_loras_;
    ready_since_ = std::chrono::system_clock::now();
    Health expected = Health::loading;
    health_.compare_exchange_strong(expected, Health::ok);
}

std::shared_ptr<Job> ImageService::submit(ImageRequest request) {
    const Health h = health_.load();
    if (h != Health::ok) throw unavailable(h == Health::loading ? "model_loading" : "shutting_down");
    request.active_loras = resolve_loras(request);
    return queue_.submit(random_id("imgreq_"), std::move(request));
}

std::string ImageService::load_lora(const std::string& path, const std::string& param, const std::string& name) {
    if (options_.lora_dir.empty())
        throw bad_request(param, "invalid_value",
                          "this server loads no LoRA files from requests (start it with "
                          "--lora-dir); name an adapter it already has instead");
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path root = fs::canonical(options_.lora_dir, ec);
    const fs::path file = fs::weakly_canonical(root / path, ec);
    const std::string rel = file.lexically_relative(root).string();
    if (ec || fs::path(path).is_absolute() || rel.empty() || rel.starts_with(".."))
        throw bad_request(param, "invalid_value", "LoRA paths are relative to --lora-dir and stay inside it, got '",
                          path.substr(0, 200), "'");
    if (!fs::is_regular_file(file, ec)) throw not_found("lora_not_found", "no LoRA file '" + rel + "' in --lora-dir");
    const std::string key = name.empty() ? rel : name;
    LoraRegistry& registry = engine_->lora_registry();
    if (auto known = registry.find(key); known && known->path == file.string()) return key;
    try {
        registry.load(key, file.string());
    } catch (const Error& e) {
        throw bad_request(param, "invalid_lora", e.what());
    }
    log_info("loaded LoRA '", key, "' from ", file.string());
    return key;
}

std::vector<std::pair<std::string, float>> ImageService::resolve_loras(const ImageRequest& request) {
    if (!request.loras) return default_loras();
    std::vector<std::pair<std::string, float>> out;
    for (size_t i = 0; i < request.loras->size(); ++i) {
        const LoraChoice& c = (*request.loras)[i];
        const std::string param = str("lora[", i, "]");
        std::string name = c.name;
        if (!c.path.empty())
            name = load_lora(c.path, param + ".path");
        else if (!engine_->lora_registry().find(name))
            throw bad_request(param + ".name", "invalid_value", "no LoRA named '", name.substr(0, 200),
                              "' is loaded (GET /v1/loras lists them)");
        out.emplace_back(name, c.strength);
    }
    return out;
}

void ImageService::set_default_loras(std::vector<std::pair<std::string, float>> active) {
    for (const auto& [name, strength] : active)
        if (!engine_->lora_registry().find(name))
            throw bad_request("lora_nickname", "invalid_value", "no LoRA named '", name.substr(0, 200), "' is loaded");
    std::lock_guard lock(lora_mutex_);
    default_loras_ = std::move(active);
}

std::vector<std::pair<std::string, float>> ImageService::default_loras() const {
    std::lock_guard lock(lora_mutex_);
    return default_loras_;
}

nlohmann::json ImageService::lora_listing() const {
    const std::vector<std::pair<std::string, float>> active = default_loras();
    nlohmann::json data = nlohmann::json::array();
    for (const std::string& name : engine_->lora_registry().names()) {
        auto adapter = engine_->lora_registry().find(name);
        if (!adapter) continue;
        nlohmann::json item = {{"name", name},
                               {"path", adapter->path},
                               {"format", adapter->format_label()},
                               {"layers", adapter->layers.size()},
                               {"active", false}};
        for (const auto& [n, strength] : active)
            if (n == name) item["active"] = true, item["strength"] = strength;
        data.push_back(std::move(item));
    }
    return {{"object", "list"}, {"data", data}};
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
    // Adapters switch between jobs only when they differ: attaching is cheap, but it drops recorded CUDA graphs.
    if (job.request.active_loras != applied_loras_) {
        try {
            engine_->set_loras(job.request.active_loras);
        } catch (const Error& e) {  // a LoRA for another model: refused before anything changed
            throw bad_request("lora", "invalid_lora", e.what());
        }
        applied_loras_ = job.request.active_loras;
    }
    const auto start = Job::Clock::now();
    EngineResult result = engine_->generate(job.request.engine, [&](const StepProgress& p) {
        metrics_.observe_step(p.step_seconds);
        job.add_progress({p.step, p.total, std::chrono::duration<double>(Job::Clock::now() - start).count()});
        if (job.cancel_requested()) throw JobCancelled{};
    });
    // The gauge is the peak since start: the load's, then the largest request's (each request reports its own).
    int64_t seen = peak_memory_bytes_.load();
    while (result.peak_memory_bytes > seen &&
           !peak_memory_bytes_.compare_exchange_weak(seen, result.peak_memory_bytes)) {
    }
    metrics_.count_images(static_cast<int64_t>(result.images.size()));
    job.finish(std::move(result));
}

}  // namespace flux2::server
