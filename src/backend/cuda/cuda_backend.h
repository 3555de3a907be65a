#pragma once
// Entry points of the CUDA backend that the factory and the tests use. Only compiled when FLUX2_HAVE_CUDA.
#include <memory>

#include "backend/backend.h"

namespace flux2 {

// options.device is "cuda" or "cuda:N". Fails with a clear message when no such GPU is visible or the requested
// precision cannot run on it.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);

// True when the CUDA runtime sees at least one GPU (false, not an error, on machines without one).
bool cuda_device_available();

}  // namespace flux2
