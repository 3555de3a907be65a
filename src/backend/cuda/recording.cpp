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
    int device = 0;
    ~CudaGraph() override {
        if (exec) cudaGraphExecDestroy(exec);
        if (graph) cudaGraphDestroy(graph);
        // The graphs' pool would keep this one's memory mapped for graphs to come (--offload model drops the
        // recordings to free the device); only blocks no queued graph uses go. Destructors cannot throw, and at exit
        // the runtime may be gone already, which frees everything anyway.
        if (!exec) return;
        const cudaError_t e = cudaDeviceGraphMemTrim(device);
        if (e != cudaSuccess && e != cudaErrorCudartUnloading)
            log_warn("cuda: trimming the graphs' memory pool failed: ", cudaGetErrorString(e));
    }
};
}  // namespace

void CudaBackend::begin_recording() {
    check(can_record(), "cuda backend: recording is off (BackendOptions::cuda_graphs)");
    check(!recording(), "cuda backend: begin_recording while already recording");
    check(!profiler_.active(), "cuda backend: cannot record a CUDA graph while the op profiler runs");
    if (fp4_scratch_.defined()) fp4_scratch_recorded_ = true;
    // Thread-local capture: another thread's CUDA calls (none today) cannot invalidate this one.
    FLUX2_CUDA_CHECK(cudaStreamBeginCapture(stream(), cudaStreamCaptureModeThreadLocal));
    stream_->set_recording(true);
}

std::shared_ptr<RecordedOps> CudaBackend::end_recording() {
    check(recording(), "cuda backend: end_recording without begin_recording");
    auto g = std::make_shared<CudaGraph>();
    const cudaError_t status = cudaStreamEndCapture(stream(), &g->graph);
    stream_->set_recording(false);
    check(status == cudaSuccess, "cuda backend: recording the CUDA graph failed: ", cudaGetErrorString(status),
          " (an op that cannot be captured, such as a host copy or a synchronization, ran while recording)");
    g->device = stream_->device();
    // The eager run before the recording peaked with its temporaries, which are gone; the graph's memory comes in
    // their place at its first replay. Keep that peak apart and restart the pools' marks from here.
    peak_folded_ = std::max(peak_folded_, peak_memory_bytes());
    reset_pool_highs();
    check(stream_->recorded_live() == 0, "cuda backend: ", stream_->recorded_live().load(),
          " tensor(s) made while recording outlive the recording; outputs must be made before begin_recording");
    FLUX2_CUDA_CHECK(cudaGraphInstantiate(&g->exec, g->graph, 0));
    size_t nodes = 0;
    FLUX2_CUDA_CHECK(cudaGraphGetNodes(g->graph, nullptr, &nodes));
    // The eager run before the recording left its temporaries in the default pool (kept reserved on purpose);
    // the graph has its own memory, so hand those back rather than holding both.
    synchronize();
    FLUX2_CUDA_CHECK(cudaMemPoolTrimTo(default_pool(), 0));
    log_debug("cuda: recorded a CUDA graph of ", nodes, " nodes");
    return g;
}

void CudaBackend::replay(const RecordedOps& ops) {
    const auto* g = dynamic_cast<const CudaGraph*>(&ops);
    check(g != nullptr, "cuda backend: replay of ops recorded by another backend");
    check(!recording(), "cuda backend: replay while recording");
    FLUX2_CUDA_CHECK(cudaGraphLaunch(g->exec, stream()));
}

void CudaBackend::start_profile() {
    check(!recording(), "cuda backend: cannot profile while recording a CUDA graph");
    profiler_.start(stream());
}

std::string CudaBackend::profile_report() { return profiler_.report(); }

}  // namespace flux2
