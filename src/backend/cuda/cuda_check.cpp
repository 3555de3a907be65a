#include "backend/cuda/cuda_check.h"

#include "core/error.h"

namespace flux2::cuda {

void fail_call(const char* library, const char* expr, const char* file, int line, const std::string& detail) {
    fail(library, " error in ", expr, " (", file, ":", line, "): ", detail);
}

void* driver_entry_point(const char* name, unsigned version) {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    FLUX2_CUDA_CHECK(cudaGetDriverEntryPointByVersion(name, &p, version, cudaEnableDefault, &found));
    check(found == cudaDriverEntryPointSuccess && p != nullptr, "cuda: the driver has no ", name);
    return p;
}

}  // namespace flux2::cuda
