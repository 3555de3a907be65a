#pragma once
// A cuDNN handle bound to a backend stream, created at its first use (loading cuDNN takes a while), for the cuDNN
// users of that stream (attention_cudnn.h, conv_cudnn.h). cudnn.h stays out of this header: get() returns the
// cudnnHandle_t as a pointer, and FLUX2_CUDNN_CHECK expands only where cudnn.h is included.
#include <memory>

#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

[[noreturn]] void fail_cudnn(int status, const char* expr, const char* file, int line);
#define FLUX2_CUDNN_CHECK(expr)                                                                          \
    do {                                                                                                 \
        const cudnnStatus_t flux2_cudnn_status_ = (expr);                                                \
        if (flux2_cudnn_status_ != CUDNN_STATUS_SUCCESS)                                                 \
            ::flux2::cuda::fail_cudnn(static_cast<int>(flux2_cudnn_status_), #expr, __FILE__, __LINE__); \
    } while (0)

// A new cudnn-frontend graph with BF16 inputs and outputs and FP32 intermediates and math, as both users build
// theirs. Type-erased so that this header needs no cudnn_frontend.h: callers cast it back with
// std::static_pointer_cast<cudnn_frontend::graph::Graph>.
std::shared_ptr<void> new_bf16_graph();

class CudnnHandle {
public:
    explicit CudnnHandle(std::shared_ptr<Stream> stream) : stream_(std::move(stream)) {}
    ~CudnnHandle();
    CudnnHandle(const CudnnHandle&) = delete;
    CudnnHandle& operator=(const CudnnHandle&) = delete;

    // The cudnnHandle_t, created and bound to the stream on the first call.
    void* get();

private:
    std::shared_ptr<Stream> stream_;
    void* handle_ = nullptr;
};

}  // namespace flux2::cuda
