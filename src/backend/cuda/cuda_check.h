#pragma once
// Error checks for CUDA runtime calls and kernel launches. Failures throw flux2::Error naming the call, the
// source location and the runtime's message; the library never exits.
#include <cuda_runtime.h>

#include <string>

namespace flux2::cuda {

[[noreturn]] void fail_call(const char* library, const char* expr, const char* file, int line,
                            const std::string& detail);

inline void check_cuda(cudaError_t status, const char* expr, const char* file, int line) {
    if (status != cudaSuccess) fail_call("CUDA", expr, file, line, cudaGetErrorString(status));
}

// A driver API function (`version` as in its PFN_..._v<version> type), looked up through the runtime: linking libcuda
// itself would keep the binary from starting on machines without a GPU driver. Throws when the driver lacks it.
void* driver_entry_point(const char* name, unsigned version);
template <typename F>
void look_up_driver(const char* name, unsigned version, F& fn) {
    fn = reinterpret_cast<F>(driver_entry_point(name, version));
}

}  // namespace flux2::cuda

// Macros only to capture the call text and its location.
#define FLUX2_CUDA_CHECK(expr) ::flux2::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)
#define FLUX2_CUDA_CHECK_LAUNCH(kernel) ::flux2::cuda::check_cuda(cudaGetLastError(), kernel, __FILE__, __LINE__)
