#pragma once
// Device memory for the CUDA backend: one stream per backend and stream-ordered allocations (cudaMallocAsync /
// cudaFreeAsync from the device's memory pool), so ops allocate their outputs without any host synchronization;
// while a CUDA graph records, blocks of the backend's graph arena instead (ArenaPlan).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "backend/arena_plan.h"
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

    // While the backend records a CUDA graph, allocations are blocks of the arena at `arena` (placed by a fresh
    // ArenaPlan), which must be freed inside the same recording; `cover` is called with the plan's high-water mark
    // whenever it rises, before the block is used. stop_recording returns the plan; blocks() it still holds outlive
    // the recording.
    void start_recording(void* arena, std::function<void(size_t)> cover);
    ArenaPlan stop_recording();
    bool recording() const { return arena_ != nullptr; }

private:
    friend std::shared_ptr<void> allocate(size_t bytes, const std::shared_ptr<Stream>& stream);

    int device_ = 0;
    cudaStream_t stream_ = nullptr;
    char* arena_ = nullptr;  // while recording
    std::function<void(size_t)> cover_;
    ArenaPlan plan_;
    // Counts recordings, so that a block outliving its recording (an error left it behind) is not given back to a
    // later recording's plan.
    uint64_t recording_number_ = 0;
};

// `bytes` of device memory (at least one byte is reserved), released on `stream` with the last owner.
std::shared_ptr<void> allocate(size_t bytes, const std::shared_ptr<Stream>& stream);

// An uninitialized device tensor.
Tensor empty_tensor(const Shape& shape, DType dtype, const std::shared_ptr<Stream>& stream);

}  // namespace flux2::cuda
