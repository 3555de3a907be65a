// One CUTLASS configuration of the FP8 GEMM lab, kLabGemmSpecs[LAB_CONFIG] (build.sh compiles each in its own
// translation unit, all at once).
#include "cutlass_fp8_gemm.cuh"

namespace fp8_lab {
namespace {
constexpr LabGemmSpec kSpec = kLabGemmSpecs[LAB_CONFIG];
template <bool Residual>
using Config = CutlassFp8Gemm<kSpec.tile_m, kSpec.tile_n, kSpec.tile_k, kSpec.cluster_m, kSpec.cluster_n,
                              kSpec.pingpong, Residual, kSpec.stream_k>;
}  // namespace

#define LAB_CONCAT2(a, b) a##b
#define LAB_CONCAT(a, b) LAB_CONCAT2(a, b)
LabGemmConfig LAB_CONCAT(lab_config_, LAB_CONFIG)() { return {kSpec.name, &Config<false>::run, &Config<true>::run}; }

}  // namespace fp8_lab
