#include "backend/cuda/op_profiler.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace flux2::cuda {

OpProfiler::~OpProfiler() {
    for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

void OpProfiler::start(cudaStream_t stream) {
    check(stream != nullptr, "op profiler: no stream");
    stream_ = stream;
    records_.clear();
    events_used_ = 0;
}

cudaEvent_t OpProfiler::next_event() {
    if (events_used_ == events_.size()) {
        cudaEvent_t e = nullptr;
        FLUX2_CUDA_CHECK(cudaEventCreate(&e));
        events_.push_back(e);
    }
    return events_[events_used_++];
}

size_t OpProfiler::open(std::string name, double flops, double bytes) {
    Record r{std::move(name), flops, bytes, next_event(), next_event()};
    FLUX2_CUDA_CHECK(cudaEventRecord(r.begin, stream_));
    records_.push_back(std::move(r));
    return records_.size() - 1;
}

void OpProfiler::close(size_t record) {
    if (stream_) FLUX2_CUDA_CHECK(cudaEventRecord(records_[record].end, stream_));
}

std::string OpProfiler::report() {
    check(active(), "op profiler: report() without start()");
    FLUX2_CUDA_CHECK(cudaStreamSynchronize(stream_));
    stream_ = nullptr;
    if (records_.empty()) return "op profile: no ops ran\n";
    struct Total {
        int64_t calls = 0;
        double ms = 0.0, flops = 0.0, bytes = 0.0;
    };
    std::map<std::string, Total> totals;
    Total comm;  // the collectives ("nccl ...")
    double busy = 0.0;
    for (const Record& r : records_) {
        float ms = 0.0f;
        FLUX2_CUDA_CHECK(cudaEventElapsedTime(&ms, r.begin, r.end));
        Total& t = totals[r.name];
        ++t.calls;
        t.ms += ms;
        t.flops += r.flops;
        t.bytes += r.bytes;
        busy += ms;
        if (r.name.rfind("nccl ", 0) == 0) {
            ++comm.calls;
            comm.ms += ms;
            comm.bytes += r.bytes;
        }
    }
    float span = 0.0f;
    FLUX2_CUDA_CHECK(cudaEventElapsedTime(&span, records_.front().begin, records_.back().end));
    std::vector<std::pair<std::string, Total>> rows(totals.begin(), totals.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });

    std::string out;
    char line[256];
    std::snprintf(line, sizeof line,
                  "op profile: %.3f ms from the first op to the last, %.3f ms inside ops, %.3f ms "
                  "(%.1f%%) idle between them\n",
                  span, busy, span - busy, span > 0 ? 100.0 * (span - busy) / span : 0.0);
    out += line;
    // A collective's time includes waiting for the slowest rank, so its GB/s is a lower bound on the link's rate.
    if (comm.calls > 0) {
        std::snprintf(line, sizeof line,
                      "communication: %lld collectives, %.3f ms (%.1f%% of the span), %.3f GB sent to other ranks, "
                      "%.1f GB/s while in them\n",
                      static_cast<long long>(comm.calls), comm.ms, span > 0 ? 100.0 * comm.ms / span : 0.0,
                      comm.bytes * 1e-9, comm.ms > 0 ? comm.bytes / (comm.ms * 1e-3) * 1e-9 : 0.0);
        out += line;
    }
    std::snprintf(line, sizeof line, "  %-44s %7s %10s %7s %10s %9s %8s\n", "op", "calls", "total ms", "share",
                  "avg us", "TFLOP/s", "GB/s");
    out += line;
    for (const auto& [name, t] : rows) {
        std::string rate = t.flops > 0 && t.ms > 0 ? str(static_cast<int64_t>(t.flops / (t.ms * 1e-3) * 1e-12)) : "";
        std::string bw = t.bytes > 0 && t.ms > 0 ? str(static_cast<int64_t>(t.bytes / (t.ms * 1e-3) * 1e-9)) : "";
        std::snprintf(line, sizeof line, "  %-44s %7lld %10.3f %6.1f%% %10.1f %9s %8s\n", name.c_str(),
                      static_cast<long long>(t.calls), t.ms, span > 0 ? 100.0 * t.ms / span : 0.0,
                      1e3 * t.ms / static_cast<double>(t.calls), rate.c_str(), bw.c_str());
        out += line;
    }
    records_.clear();
    return out;
}

}  // namespace flux2::cuda
