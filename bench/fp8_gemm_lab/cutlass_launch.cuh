// Launching one of the labs' CUTLASS 3.x GEMMs (cutlass_fp8_gemm.cuh, w4a8_gemm.cuh) with its arguments made.
#pragma once

#include <cutlass/cutlass.h>

#include <cstddef>

namespace fp8_lab {

// Launches on `stream`; returns false (with the reason in `why`) when CUTLASS refuses the problem. One Gemm object a
// configuration: its initialize() takes the arguments of each call.
template <class Gemm>
bool launch_cutlass(const typename Gemm::Arguments& args, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                    const char** why) {
    static Gemm gemm;
    if (gemm.can_implement(args) != cutlass::Status::kSuccess) {
        *why = "can_implement";
        return false;
    }
    if (Gemm::get_workspace_size(args) > workspace_bytes) {
        *why = "workspace";
        return false;
    }
    if (gemm.initialize(args, workspace, stream) != cutlass::Status::kSuccess) {
        *why = "initialize";
        return false;
    }
    if (gemm.run(stream) != cutlass::Status::kSuccess) {
        *why = "run";
        return false;
    }
    return true;
}

}  // namespace fp8_lab
