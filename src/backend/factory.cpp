#include "backend/communicator.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/log.h"

#if defined(FLUX2_HAVE_CUDA) && __has_include("backend/cuda/cuda_backend.h")
#define FLUX2_CUDA_BACKEND 1
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/nccl_communicator.h"
#endif

namespace flux2 {

std::string resolve_device(const BackendOptions& options) {
    if (options.device != "auto") return options.device;
    const bool w4a4 = options.nvfp4_activations == Nvfp4Activations::w4a4;
    if (w4a4 || options.precision == "f32") {
        log_info("device auto: cpu (", w4a4 ? "activations w4a4" : "precision f32", " is CPU numerics)");
        return "cpu";
    }
#ifdef FLUX2_CUDA_BACKEND
    const CudaDeviceProbe gpu = probe_cuda_device(0);
    if (gpu.usable) {
        log_info("device auto: cuda (", gpu.description, "), NVFP4/FP8 linears in ",
                 options.precision.empty() ? gpu.default_precision : options.precision);
        return "cuda";
    }
    log_info("device auto: no usable CUDA GPU (", gpu.why_not, "); running on the CPU, which is slow for full-size ",
             "images");
#else
    log_info(
        "device auto: this flux2 build has no CUDA backend; running on the CPU, which is slow for full-size "
        "images");
#endif
    return "cpu";
}

std::unique_ptr<Backend> make_backend(const BackendOptions& requested) {
    BackendOptions options = requested;
    options.device = resolve_device(requested);
    // Said when "auto" fell back to the CPU, so that a GPU-only option explains itself.
    const char* why_cpu = requested.device == "auto" ? " (--device auto found no usable GPU)" : "";
    if (options.device == "cpu") {
        check(options.precision.empty() || options.precision == "f32", "precision '", options.precision,
              "' is a GPU path; the CPU backend computes in f32", why_cpu);
        check(options.residency.empty(), "residency '", options.residency,
              "' applies to the CUDA fp8 path; the CPU backend keeps checkpoint weights as loaded", why_cpu);
        check(options.fp8_accumulation.empty(), "fp8 accumulation '", options.fp8_accumulation,
              "' applies to the CUDA fp8 path; the CPU backend computes in f32", why_cpu);
        check(options.attention.empty() || options.attention == "auto", "attention '", options.attention,
              "' is a GPU path; the CPU backend computes attention in f32", why_cpu);
        return std::make_unique<CpuBackend>(options);
    }
    if (options.device.rfind("cuda", 0) == 0) {
#ifdef FLUX2_CUDA_BACKEND
        return make_cuda_backend(options);
#else
        fail("device '", options.device,
             "' requested, but this flux2 build has no CUDA backend "
             "(rebuild on a machine with the CUDA toolkit)");
#endif
    }
    fail("unknown device '", options.device, "' (expected auto, cpu, cuda or cuda:N)");
}

std::shared_ptr<CommunicatorGroup> make_communicator_group(const std::string& device, int size) {
    if (device == "cpu") return std::make_shared<FakeCommunicatorGroup>(size);
    if (device.rfind("cuda", 0) == 0) {
#ifdef FLUX2_CUDA_BACKEND
        return make_nccl_group(size);
#else
        fail("device '", device, "' requested for ", size, " ranks, but this flux2 build has no CUDA backend");
#endif
    }
    fail("several ranks need device cpu or cuda, got '", device, "'");
}

}  // namespace flux2
