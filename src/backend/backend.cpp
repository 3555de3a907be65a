#include "backend/backend.h"

#include <atomic>

#include "core/error.h"
#include "core/log.h"

namespace flux2 {

namespace {
std::atomic<uint64_t> next_backend_id{1};  // 0 is "prepared by no backend"
}  // namespace

Backend::Backend() : instance_id_(next_backend_id.fetch_add(1)) {}

void Backend::record_path(const LinearWeight& w, const std::string& path) {
    int64_t& n = path_counts_[path];
    if (n == 0 || log_level() <= LogLevel::debug) {
        // Per-layer detail only at debug level; the summary line makes a fallback visible at info level.
        log_debug("linear ", w.name, " [", w.out_features, "x", w.in_features, "] ", w.format_label(), " -> ", path);
    }
    ++n;
}

std::string Backend::path_summary() const {
    std::string s;
    for (const auto& [path, n] : path_counts_) s += str(s.empty() ? "" : ", ", path, " x", n);
    return s.empty() ? "no linear layers ran" : s;
}

void Backend::begin_recording() { fail("the ", name(), " backend cannot record ops for replay"); }
std::shared_ptr<RecordedOps> Backend::end_recording() { fail("the ", name(), " backend cannot record ops for replay"); }
void Backend::replay(const RecordedOps&) { fail("the ", name(), " backend cannot replay recorded ops"); }
std::unique_ptr<LayerStream> Backend::stream_layers(const std::vector<std::vector<const LinearWeight*>>&,
                                                    const LayerStreamOptions&) {
    return nullptr;
}
std::unique_ptr<HostPinning> Backend::pin_host_weights(const std::vector<const LinearWeight*>&) { return nullptr; }
void Backend::start_profile() { fail("the ", name(), " backend has no op profiler (it exists for cuda)"); }
std::string Backend::profile_report() { fail("the ", name(), " backend has no op profiler (it exists for cuda)"); }
std::unique_ptr<ActivityMonitor> Backend::monitor_activity(std::string& why_not) {
    why_not.clear();  // no device to read, so nothing is missing
    return nullptr;
}

}  // namespace flux2
