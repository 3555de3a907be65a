#pragma once
// Entry points of the CUDA backend that the factory and the tests use. Only compiled when FLUX2_HAVE_CUDA.
#include <memory>
#include <string>

#include "backend/backend.h"

namespace flux2 {

// options.device is "cuda" or "cuda:N". Fails with a clear message when no such GPU is visible or the requested
// precision cannot run on it.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);

// True when the CUDA runtime sees at least one GPU (false, not an error, on machines without one).
bool cuda_device_available();

// Whether GPU `index` can run this build (it is visible and its architecture is among the compiled ones), for
// device "auto".
struct CudaDeviceProbe {
    bool usable = false;
    std::string description;        // "NVIDIA H100 80GB HBM3, compute 9.0, 81559 MiB"
    std::string default_precision;  // the precision path an empty precision option picks on it
    std::string why_not;            // when not usable: "no CUDA GPU visible: ...", "...: this build has no kernels ..."
};
CudaDeviceProbe probe_cuda_device(int index);

}  // namespace flux2
