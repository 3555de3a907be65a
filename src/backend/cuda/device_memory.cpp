#include "backend/cuda/device_memory.h"

#include <cstdint>
#include <limits>
#include <utility>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

Stream::Stream(int device) : device_(device) {
    FLUX2_CUDA_CHECK(cudaSetDevice(device));
    FLUX2_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    // Keep freed blocks in the pool: the default threshold (0) hands memory back to the driver at every
    // synchronization, and the next step would pay for cudaMalloc again.
    cudaMemPool_t pool = nullptr;
    FLUX2_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t keep = std::numeric_limits<uint64_t>::max();
    FLUX2_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
}

Stream::~Stream() {
    // Destructors cannot throw: report and go on.
    cudaError_t status = cudaStreamSynchronize(stream_);
    if (status == cudaSuccess) status = cudaStreamDestroy(stream_);
    if (status != cudaSuccess) log_error("cuda: releasing the backend stream failed: ", cudaGetErrorString(status));
}

void Stream::start_recording(void* arena, std::function<void(size_t)> cover) {
    check(arena != nullptr, "cuda: recording needs an arena");
    arena_ = static_cast<char*>(arena);
    cover_ = std::move(cover);
    plan_ = ArenaPlan();
    ++recording_number_;
}

ArenaPlan Stream::stop_recording() {
    arena_ = nullptr;
    cover_ = nullptr;
    return std::move(plan_);
}

std::shared_ptr<void> allocate(size_t bytes, const std::shared_ptr<Stream>& stream) {
    if (stream->recording()) {
        // No device call: the recording runs in the order it was recorded, so the plan's reuse of a block given
        // back earlier is ordered after that block's last use.
        const size_t high = stream->plan_.high();
        const size_t offset = stream->plan_.take(bytes);
        if (stream->plan_.high() > high) {
            try {
                stream->cover_(stream->plan_.high());
            } catch (...) {
                stream->plan_.give(offset);
                throw;
            }
        }
        return std::shared_ptr<void>(stream->arena_ + offset, [stream, offset, n = stream->recording_number_](void*) {
            if (stream->recording() && stream->recording_number_ == n) stream->plan_.give(offset);
        });
    }
    void* p = nullptr;
    cudaError_t status = cudaMallocAsync(&p, bytes > 0 ? bytes : 1, stream->get());
    if (status == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // not sticky: clear it so that the caller's next CUDA call does not report it
        size_t free = 0, total = 0;
        cudaMemGetInfo(&free, &total);
        fail("cuda: out of memory allocating ", bytes / 1e9, " GB on the device (", free / 1e9, " of ", total / 1e9,
             " GB free); lower --resident-budget, or use --offload layers, --offload model or --vae-tiling "
             "(docs/CLI.md)");
    }
    check(status == cudaSuccess, "cuda: cannot allocate ", bytes,
          " bytes of device memory: ", cudaGetErrorString(status));
    return std::shared_ptr<void>(p, [stream](void* q) {
        cudaError_t s = cudaFreeAsync(q, stream->get());
        if (s != cudaSuccess) log_error("cuda: cudaFreeAsync failed: ", cudaGetErrorString(s));
    });
}

Tensor empty_tensor(const Shape& shape, DType dtype, const std::shared_ptr<Stream>& stream) {
    for (int64_t d : shape) check(d >= 0, "negative dimension in shape ", shape_str(shape));
    std::shared_ptr<void> memory = allocate(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), stream);
    void* data = memory.get();
    return Tensor::wrap(shape, dtype, Device::cuda, data, std::move(memory));
}

}  // namespace flux2::cuda
