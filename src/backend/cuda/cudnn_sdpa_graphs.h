#pragma once
// What the BF16 and FP8 cuDNN SDPA wrappers share: one cudnn-frontend graph per shape (and layout), described by the
// wrapper, built (validate ... build_plans) on first use and cached, executed on the backend's stream with one
// workspace that grows to the largest plan's (outgrown ones are kept: recorded steps hold their addresses). Errors
// name the op, the shape and the step that failed.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/cuda/cudnn_handle.h"
#include "backend/cuda/device_memory.h"

namespace cudnn_frontend::graph {
class Graph;
}

namespace flux2::cuda {

class SdpaGraphs {
public:
    // `op` names the wrapper in errors and logs ("cuDNN SDPA", "cuDNN FP8 SDPA").
    SdpaGraphs(std::shared_ptr<Stream> stream, std::string op);
    ~SdpaGraphs();
    SdpaGraphs(const SdpaGraphs&) = delete;
    SdpaGraphs& operator=(const SdpaGraphs&) = delete;

    // key: B, L, H, Dh, then whatever else the description depends on (token strides). Builds key's plan from the
    // graph `describe` returns (its tensors named by uid) unless built already; throws if cuDNN refuses it.
    void ensure(const std::vector<int64_t>& key,
                const std::function<std::shared_ptr<cudnn_frontend::graph::Graph>()>& describe);
    // Runs key's plan (ensure()d before) on the tensors of `pack` (uid -> device pointer).
    void execute(const std::vector<int64_t>& key, std::unordered_map<int64_t, void*>& pack);

private:
    struct Plan;
    std::string where(const std::vector<int64_t>& key) const;  // "cuDNN SDPA (B=.. L=.. H=.. Dh=..)"

    std::shared_ptr<Stream> stream_;
    std::string op_;
    CudnnHandle handle_;
    std::shared_ptr<void> workspace_;
    int64_t workspace_bytes_ = 0;
    std::vector<std::shared_ptr<void>> outgrown_;  // earlier workspaces, kept for the recorded steps that use them
    std::map<std::vector<int64_t>, std::unique_ptr<Plan>> plans_;
};

}  // namespace flux2::cuda
