#pragma once
// The server's Prometheus metrics (text exposition format 0.0.4): request counts by endpoint and status, latency
// histograms, job counters. Gauges that belong to other objects (queue depth, device memory) are passed in when
// rendering.
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace flux2::server {

class Histogram {
public:
    static constexpr std::array<double, 14> kBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                       1,     2.5,  5,     10,   30,  60,   300};
    void observe(double seconds);
    // The _bucket / _sum / _count lines of `name` with `labels` (e.g. endpoint="/v1/...") inside the braces.
    std::string render(const std::string& name, const std::string& labels) const;

private:
    std::array<uint64_t, kBounds.size()> counts_{};  // per bucket, not cumulative
    uint64_t count_ = 0;
    double sum_ = 0;
};

struct LiveGauges {
    size_t queue_depth = 0;
    bool job_running = false;
    int64_t device_memory_peak_bytes = 0;
    size_t stored_images = 0;
    bool ready = false;
};

class Metrics {
public:
    void count_request(const std::string& endpoint, int status, double seconds);
    void observe_step(double seconds);
    void count_images(int64_t n);
    void count_cancelled();
    uint64_t cancelled() const;
    std::string render(const LiveGauges& live) const;

private:
    mutable std::mutex mutex_;
    std::map<std::pair<std::string, int>, uint64_t> requests_;
    std::map<std::string, Histogram> request_seconds_;
    Histogram step_seconds_;
    uint64_t images_ = 0, cancelled_ = 0;
};

}  // namespace flux2::server
