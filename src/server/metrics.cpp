#include "server/metrics.h"

#include <sstream>

namespace flux2::server {

void Histogram::observe(double seconds) {
    size_t i = 0;
    while (i < kBounds.size() && seconds > kBounds[i]) ++i;
    if (i < kBounds.size()) ++counts_[i];
    ++count_;
    sum_ += seconds;
}

std::string Histogram::render(const std::string& name, const std::string& labels) const {
    std::ostringstream os;
    const std::string sep = labels.empty() ? "" : ",";
    uint64_t cumulative = 0;
    for (size_t i = 0; i < kBounds.size(); ++i) {
        cumulative += counts_[i];
        os << name << "_bucket{" << labels << sep << "le=\"" << kBounds[i] << "\"} " << cumulative << "\n";
    }
    os << name << "_bucket{" << labels << sep << "le=\"+Inf\"} " << count_ << "\n";
    const std::string braces = labels.empty() ? "" : "{" + labels + "}";
    os << name << "_sum" << braces << " " << sum_ << "\n" << name << "_count" << braces << " " << count_ << "\n";
    return os.str();
}

void Metrics::count_request(const std::string& endpoint, int status, double seconds) {
    std::lock_guard lock(mutex_);
    ++requests_[{endpoint, status}];
    request_seconds_[endpoint].observe(seconds);
}

void Metrics::observe_step(double seconds) {
    std::lock_guard lock(mutex_);
    step_seconds_.observe(seconds);
}

void Metrics::count_images(int64_t n) {
    std::lock_guard lock(mutex_);
    images_ += static_cast<uint64_t>(n);
}

void Metrics::count_cancelled() {
    std::lock_guard lock(mutex_);
    ++cancelled_;
}

uint64_t Metrics::cancelled() const {
    std::lock_guard lock(mutex_);
    return cancelled_;
}

std::string Metrics::render(const LiveGauges& live) const {
    std::lock_guard lock(mutex_);
    std::ostringstream os;
    os << "# HELP flux2_requests_total HTTP requests answered, by endpoint and status.\n"
          "# TYPE flux2_requests_total counter\n";
    for (const auto& [key, n] : requests_)
        os << "flux2_requests_total{endpoint=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
    os << "# HELP flux2_request_duration_seconds Time from a request's arrival to its answer.\n"
          "# TYPE flux2_request_duration_seconds histogram\n";
    for (const auto& [endpoint, h] : request_seconds_)
        os << h.render("flux2_request_duration_seconds", "endpoint=\"" + endpoint + "\"");
    os << "# HELP flux2_step_duration_seconds Wall time of one denoising step.\n"
          "# TYPE flux2_step_duration_seconds histogram\n"
       << step_seconds_.render("flux2_step_duration_seconds", "");
    os << "# HELP flux2_queue_depth Jobs waiting for the device.\n# TYPE flux2_queue_depth gauge\n"
       << "flux2_queue_depth " << live.queue_depth << "\n";
    os << "# HELP flux2_jobs_running Jobs on the device now (0 or 1).\n# TYPE flux2_jobs_running gauge\n"
       << "flux2_jobs_running " << (live.job_running ? 1 : 0) << "\n";
    os << "# HELP flux2_jobs_cancelled_total Jobs cancelled because their client went away.\n"
          "# TYPE flux2_jobs_cancelled_total counter\n"
       << "flux2_jobs_cancelled_total " << cancelled_ << "\n";
    os << "# HELP flux2_images_generated_total Images generated.\n# TYPE flux2_images_generated_total counter\n"
       << "flux2_images_generated_total " << images_ << "\n";
    os << "# HELP flux2_device_memory_bytes Peak memory of the compute device (host RSS on the CPU backend).\n"
          "# TYPE flux2_device_memory_bytes gauge\n"
       << "flux2_device_memory_bytes{kind=\"peak\"} " << live.device_memory_peak_bytes << "\n";
    os << "# HELP flux2_stored_images Images kept for url responses.\n# TYPE flux2_stored_images gauge\n"
       << "flux2_stored_images " << live.stored_images << "\n";
    os << "# HELP flux2_ready 1 once the models are loaded.\n# TYPE flux2_ready gauge\n"
       << "flux2_ready " << (live.ready ? 1 : 0) << "\n";
    return os.str();
}

}  // namespace flux2::server
