#include "backend/cuda/cudnn_handle.h"

#include <cudnn.h>

#include "backend/cuda/cuda_check.h"
#include "core/log.h"

namespace flux2::cuda {

void fail_cudnn(int status, const char* expr, const char* file, int line) {
    fail_call("cuDNN", expr, file, line, cudnnGetErrorString(static_cast<cudnnStatus_t>(status)));
}

CudnnHandle::~CudnnHandle() {
    if (handle_) cudnnDestroy(static_cast<cudnnHandle_t>(handle_));
}

void* CudnnHandle::get() {
    if (!handle_) {
        cudnnHandle_t h = nullptr;
        FLUX2_CUDNN_CHECK(cudnnCreate(&h));
        handle_ = h;
        FLUX2_CUDNN_CHECK(cudnnSetStream(h, stream_->get()));
        log_debug("cuDNN ", cudnnGetVersion(), " loaded");
    }
    return handle_;
}

}  // namespace flux2::cuda
