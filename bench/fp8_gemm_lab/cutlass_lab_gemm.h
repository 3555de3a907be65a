// What the FP8 GEMM lab's driver (main.cu, no CUTLASS headers) knows of the CUTLASS configurations, each compiled in
// a translation unit of its own (cutlass_config.cu with -DLAB_CONFIG=i).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace fp8_lab {

struct LabGemmCall {
    const void* a;          // [m, k] E4M3 activations
    const void* b;          // [n, k] E4M3 weight
    const float* a_scales;  // [m]
    const float* b_scales;  // [n]
    const void* c;          // [m, n] BF16, residual shapes only
    void* d;                // [m, n] BF16
    long m, n, k;
    int swizzle;  // the tile scheduler's largest swizzle (1: none)
    char raster;  // 'm', 'n', or anything else for CUTLASS's heuristic
};

using LabGemmRun = bool (*)(const LabGemmCall&, void* workspace, size_t workspace_bytes, cudaStream_t,
                            const char** why);

struct LabGemmConfig {
    const char* name;
    LabGemmRun plain;     // D = a_scale b_scale (A . B^T)
    LabGemmRun residual;  // the same + C
};

// The configurations: tile M x N x K, cluster, kernel schedule (cooperative: two consumer warpgroups share a tile;
// pingpong: each warpgroup its own tile, their epilogues and mainloops taking turns), tile scheduler.
struct LabGemmSpec {
    int tile_m, tile_n, tile_k, cluster_m, cluster_n;
    bool pingpong, stream_k;
    const char* name;
};
constexpr int kLabConfigs = 8;  // build.sh reads this line
constexpr LabGemmSpec kLabGemmSpecs[kLabConfigs] = {
    {128, 128, 128, 1, 2, false, false, "cooperative 128x128x128, cluster 1x2"},
    {128, 256, 128, 2, 1, false, false, "cooperative 128x256x128, cluster 2x1"},
    {128, 256, 128, 1, 1, false, false, "cooperative 128x256x128, cluster 1x1"},
    {256, 128, 128, 1, 2, false, false, "cooperative 256x128x128, cluster 1x2"},
    {64, 256, 128, 1, 1, true, false, "pingpong 64x256x128, cluster 1x1"},
    {128, 128, 128, 2, 1, true, false, "pingpong 128x128x128, cluster 2x1"},
    {128, 128, 128, 1, 2, false, true, "cooperative 128x128x128, cluster 1x2, stream-K"},
    {128, 192, 128, 1, 1, false, false, "cooperative 128x192x128, cluster 1x1"},
};
LabGemmConfig lab_config(int i);

}  // namespace fp8_lab
