#include "backend/cuda/cudnn_sdpa_graphs.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

namespace fe = cudnn_frontend;

struct SdpaGraphs::Plan {
    std::shared_ptr<fe::graph::Graph> graph;
    int64_t workspace_bytes = 0;
};

SdpaGraphs::SdpaGraphs(std::shared_ptr<Stream> stream, std::string op)
    : stream_(stream), op_(std::move(op)), handle_(std::move(stream)) {}

SdpaGraphs::~SdpaGraphs() = default;  // the plans go before the handle (declared after it)

std::string SdpaGraphs::where(const std::vector<int64_t>& key) const {
    return str(op_, " (B=", key.at(0), " L=", key.at(1), " H=", key.at(2), " Dh=", key.at(3), ")");
}

void SdpaGraphs::ensure(const std::vector<int64_t>& key,
                        const std::function<std::shared_ptr<fe::graph::Graph>()>& describe) {
    if (plans_.count(key)) return;
    std::shared_ptr<fe::graph::Graph> g = describe();
    auto dnn = static_cast<cudnnHandle_t>(handle_.get());
    auto check_fe = [&](fe::error_t e, const char* step) {
        check(e.is_good(), where(key), ": ", step, " failed: ", e.get_message());
    };
    check_fe(g->validate(), "validate");
    check_fe(g->build_operation_graph(dnn), "build_operation_graph");
    check_fe(g->create_execution_plans({fe::HeurMode_t::A}), "create_execution_plans");
    check_fe(g->check_support(dnn), "check_support");
    check_fe(g->build_plans(fe::BuildPlanPolicy_t::HEURISTICS_CHOICE), "build_plans");
    auto p = std::make_unique<Plan>();
    p->graph = g;
    check_fe(g->get_workspace_size(p->workspace_bytes), "get_workspace_size");
    log_debug(where(key), " plan built, workspace ", p->workspace_bytes, " bytes");
    plans_.emplace(key, std::move(p));
}

void SdpaGraphs::execute(const std::vector<int64_t>& key, std::unordered_map<int64_t, void*>& pack) {
    const Plan& p = *plans_.at(key);
    if (p.workspace_bytes > workspace_bytes_) {
        // A recorded step (a CUDA graph) keeps the workspace it was recorded with: an outgrown one stays allocated
        // for its replays, which would otherwise write into memory the pool had given to other tensors (a step
        // recorded at one resolution, replayed after a larger one grew the workspace). cuDNN 9.19 asks 256 bytes for
        // every FLUX.2 shape on an H200 (klein-4B 256²-2048², dev 512²-1024², BF16 and FP8), so today it never grows.
        if (workspace_) outgrown_.push_back(std::move(workspace_));
        workspace_ = allocate(static_cast<size_t>(p.workspace_bytes), stream_);
        workspace_bytes_ = p.workspace_bytes;
    }
    fe::error_t e = p.graph->execute(static_cast<cudnnHandle_t>(handle_.get()), pack,
                                     workspace_bytes_ ? workspace_.get() : nullptr);
    check(e.is_good(), where(key), ": execute failed: ", e.get_message());
}

}  // namespace flux2::cuda
