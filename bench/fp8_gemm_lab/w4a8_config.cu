// One CUTLASS configuration of the W4A8 lab, kW4a8Specs[W4A8_CONFIG] (build.sh compiles each in its own translation
// unit, all at once).
#include "w4a8_gemm.cuh"

namespace fp8_lab {
namespace {
constexpr W4a8Spec kSpec = kW4a8Specs[W4A8_CONFIG];
using Config = CutlassW4a8Gemm<kSpec.tile_features, kSpec.tile_tokens, kSpec.cluster_features, kSpec.cluster_tokens,
                               kSpec.pingpong>;
}  // namespace

#define W4A8_CONCAT2(a, b) a##b
#define W4A8_CONCAT(a, b) W4A8_CONCAT2(a, b)
W4a8Config W4A8_CONCAT(w4a8_config_, W4A8_CONFIG)() { return {kSpec.name, &Config::run, &Config::reorder}; }

}  // namespace fp8_lab
