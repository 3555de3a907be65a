#pragma once
// Device memory for the CUDA backend: one stream per backend and stream-ordered allocations (cudaMallocAsync /
// cudaFreeAsync from the device's memory pool), so ops allocate their outputs without any host synchronization.
#include <cuda_runtime.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/tensor.h"

namespace flux2::cuda {

// The backend's stream. Every allocation holds a reference, so tensors and prepared weights that outlive the
// backend are still freed in stream order.
class Stream {
public:
    explicit Stream(int device);
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    cudaStream_t get() const { return stream_; }
    int device() const { return device_; }

    // While the backend records a CUDA graph, allocations become graph memory nodes that must be freed inside
    // the same recording; these count the ones still alive.
    void set_recording(bool on) { recording_ = on; }
    bool recording() const { return recording_; }
    std::atomic<int64_t>& recorded_live() { return recorded_live_; }

private:
    int device_ = 0;
    cudaStream_t stream_ = nullptr;
    bool recording_ = false;
    std::atomic<int64_t> recorded_live_{0};
};

// `bytes` of device memory (at least one byte is reserved), released on `stream` with the last owner.
std::shared_ptr<void> allocate(size_t bytes, const std::shared_ptr<Stream>& stream);

// An uninitialized device tensor.
Tensor empty_tensor(const Shape& shape, DType dtype, const std::shared_ptr<Stream>& stream);

}  // namespace flux2::cuda
