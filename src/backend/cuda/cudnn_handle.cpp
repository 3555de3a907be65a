#include "backend/cuda/cudnn_handle.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include "backend/cuda/cuda_check.h"
#include "core/log.h"

namespace flux2::cuda {

void fail_cudnn(int status, const char* expr, const char* file, int line) {
    fail_call("cuDNN", expr, file, line, cudnnGetErrorString(static_cast<cudnnStatus_t>(status)));
}

std::shared_ptr<void> new_bf16_graph() {
    namespace fe = cudnn_frontend;
    auto g = std::make_shared<fe::graph::Graph>();
    g->set_io_data_type(fe::DataType_t::BFLOAT16)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    return g;
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
