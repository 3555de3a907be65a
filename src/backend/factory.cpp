#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

#if defined(FLUX2_HAVE_CUDA) && __has_include("backend/cuda/cuda_backend.h")
#define FLUX2_CUDA_BACKEND 1
#include "backend/cuda/cuda_backend.h"
#endif

namespace flux2 {

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
    if (options.device == "cpu") {
        check(options.precision.empty() || options.precision == "f32",
              "precision '", options.precision, "' is a GPU path; the CPU backend computes in f32");
        check(options.residency.empty(), "residency '", options.residency,
              "' applies to the CUDA fp8 path; the CPU backend keeps checkpoint weights as loaded");
        return std::make_unique<CpuBackend>(options);
    }
    if (options.device.rfind("cuda", 0) == 0) {
#ifdef FLUX2_CUDA_BACKEND
        return make_cuda_backend(options);
#else
        fail("device '", options.device, "' requested, but this flux2 build has no CUDA backend "
             "(rebuild on a machine with the CUDA toolkit)");
#endif
    }
    fail("unknown device '", options.device, "' (expected cpu or cuda)");
}

}  // namespace flux2
