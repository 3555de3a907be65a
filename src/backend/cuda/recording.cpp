// CudaBackend: CUDA graphs (Backend::begin_recording / end_recording / replay) through stream capture, and the op
// profiler's entry points. A FLUX.2 step is several hundred kernels; replaying them as one graph removes the host
// work per op (argument checks, allocation, cuBLASLt/cuDNN dispatch) that otherwise leaves the GPU idle between
// short kernels.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2 {

namespace {
struct CudaGraph final : RecordedOps {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    std::shared_ptr<void> arena_lease;  // GraphArena::hold; goes after the graph
    ~CudaGraph() override {
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
    }
};
}  // namespace

void CudaBackend::begin_recording() {
    check(can_record(), "cuda backend: recording is off (BackendOptions::cuda_graphs)");
    check(!recording(), "cuda backend: begin_recording while already recording");
    check(!profiler_.active(), "cuda backend: cannot record a CUDA graph while the op profiler runs");
    if (!graph_arena_) graph_arena_ = std::make_shared<cuda::GraphArena>(stream_, memory_capacity_, graph_arena_bytes_);
    // The eager run before the recording left its temporaries in the default pool (kept reserved on purpose); the
    // recording's go to the arena, so hand those back before it maps any.
    synchronize();
    FLUX2_CUDA_CHECK(cudaMemPoolTrimTo(default_pool(), 0));
    // That run peaked with those temporaries, which never coexist with the arena: keep that peak apart and restart
    // the marks from here.
    fold_peak();
    recording_lease_ = graph_arena_->record();
    // Thread-local capture: another thread's CUDA calls (none today) cannot invalidate this one.
    FLUX2_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
    stream_->start_recording(graph_arena_->base(), [arena = graph_arena_.get()](size_t high) { arena->cover(high); });
}

std::shared_ptr<RecordedOps> CudaBackend::end_recording() {
    check(recording(), "cuda backend: end_recording without begin_recording");
    const auto recording_lease = std::move(recording_lease_);  // given back however this ends, after hold() below
    auto g = std::make_shared<CudaGraph>();
    const cudaError_t status = cudaStreamEndCapture(stream(), &g->graph);
    const ArenaPlan plan = stream_->stop_recording();
    check(status == cudaSuccess, "cuda backend: recording the CUDA graph failed: ", cudaGetErrorString(status),
          " (an op that cannot be captured, such as a host copy or a synchronization, ran while recording)");
    // The arena was mapped in strides while recording and is mapped to the plan's size below: keep that peak too.
    fold_peak();
    check(plan.blocks() == 0, "cuda backend: ", plan.blocks(),
          " tensor(s) made while recording outlive the recording; outputs must be made before begin_recording");
    FLUX2_CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0));
    size_t nodes = 0;
    FLUX2_CUDA_CHECK(cudaGraphGetNodes(g->graph, nullptr, &nodes));
    // Nothing is queued since begin_recording synchronized, so the arena may be mapped anew in one piece.
    g->arena_lease = graph_arena_->hold(plan.high());
    log_debug("cuda: recorded a CUDA graph of ", nodes, " nodes; its intermediates take ", plan.high() / 1e9,
              " GB of the graph arena (", plan.live_high() / 1e9, " GB live at most), which maps ",
              graph_arena_->mapped_bytes() / 1e9, " GB");
    return g;
}

void CudaBackend::replay(const RecordedOps& ops) {
    const auto* g = dynamic_cast<const CudaGraph*>(&ops);
    check(g != nullptr, "cuda backend: replay of ops recorded by another backend");
    check(!recording(), "cuda backend: replay while recording");
    graph_arena_->map();  // after release_cached_memory
    FLUX2_CUDA_CHECK(cudaGraphLaunch(g->exec, stream()));
}

void CudaBackend::start_profile() {
    check(!recording(), "cuda backend: cannot profile while recording a CUDA graph");
    profiler_.start(stream());
}

std::string CudaBackend::profile_report() { return profiler_.report(); }

}  // namespace flux2
