#include "backend/cuda/graph_arena.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "core/log.h"

namespace flux2::cuda {

GraphArena::GraphArena(std::shared_ptr<Stream> stream, size_t capacity, std::shared_ptr<MappedBytes> counter)
    : stream_(std::move(stream)),
      memory_(0, stream_->device(), std::move(counter), "recorded steps' intermediates", capacity) {}

std::shared_ptr<void> GraphArena::lease(size_t need) {
    std::multiset<size_t>::iterator it;
    {
        std::lock_guard lock(mutex_);
        it = needs_.insert(need);
    }
    // From here the lease gives the need back even if mapping throws.
    return std::shared_ptr<void>(this, [self = shared_from_this(), it](void*) { self->release(it); });
}

std::shared_ptr<void> GraphArena::record() {
    auto l = lease(0);
    map();
    return l;
}

void GraphArena::cover(size_t bytes) {
    std::lock_guard lock(mutex_);
    if (!memory_.parked() && memory_.bytes() >= bytes) return;
    // Mapping memory is no stream work, yet the runtime counts it among the calls a capture forbids by default.
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    FLUX2_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
    try {
        // A step's plan grows by hundreds of blocks: map in strides, trimmed by hold() once recorded.
        constexpr size_t kStride = size_t{32} << 20;
        memory_.grow(std::min(memory_.capacity(), std::max(bytes, memory_.bytes() + kStride)));
        memory_.unpark();
    } catch (...) {
        cudaThreadExchangeStreamCaptureMode(&mode);
        throw;
    }
    FLUX2_CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
}

std::shared_ptr<void> GraphArena::hold(size_t high) {
    auto l = lease(high);
    std::lock_guard lock(mutex_);
    memory_.resize(*needs_.rbegin());
    memory_.unpark();
    return l;
}

void GraphArena::park() {
    std::lock_guard lock(mutex_);
    memory_.park();
}

void GraphArena::map() {
    std::lock_guard lock(mutex_);
    if (needs_.empty() || !memory_.parked()) return;
    // Sized anew only while parked: a smaller size (a recording is gone) while mapped would mean unmapping under a
    // replay that may still be queued.
    memory_.resize(*needs_.rbegin());
    memory_.unpark();
}

void GraphArena::release(std::multiset<size_t>::iterator need) {
    std::lock_guard lock(mutex_);
    needs_.erase(need);
    if (!needs_.empty()) return;
    // The last recording is gone: give the memory back once the work queued with it is done. Destructors cannot
    // throw: report and go on.
    try {
        const cudaError_t status = cudaStreamSynchronize(stream_->get());
        if (status != cudaSuccess && status != cudaErrorCudartUnloading) {
            log_error("cuda: waiting for the stream before unmapping the graph arena failed: ",
                      cudaGetErrorString(status));
            return;
        }
        if (status == cudaSuccess) memory_.park();
    } catch (const std::exception& e) {
        log_error("cuda: unmapping the graph arena failed: ", e.what());
    }
}

}  // namespace flux2::cuda
