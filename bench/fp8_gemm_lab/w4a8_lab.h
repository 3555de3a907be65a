// What the W4A8 lab's driver (w4a8_main.cu, no CUTLASS headers) knows of its CUTLASS configurations, each compiled in
// a translation unit of its own (w4a8_config.cu with -DW4A8_CONFIG=i).
//
// The GEMM: y [m, n] (BF16, row-major) = x_scale[m] w_scale[n] (x [m, k] E4M3 . w [n, k]^T), where w is held as
// 4-bit codes and turned into E4M3 inside the mainloop: code bit 3 is the sign, bits 0-2 index an 8-entry table of
// E4M3 values, one table per feature and group of `group` inputs. NVFP4's E2M1 codes are sign-magnitude in exactly
// this form, and the table of a 16-element NVFP4 block is what the engine's conversion builds
// (src/backend/cuda/weight_prepare.cu, block_code_table: the eight magnitudes times the block scale, over the row
// scale, in E4M3). CUTLASS's mixed-input mainloop takes one table per whole K tile (group >= 128) where NVFP4 has one
// per 16 inputs, so what this lab times is a lower bound on a W4A8 GEMM for NVFP4 weights built on that mainloop: the
// same lookups with an eighth of the tables.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace fp8_lab {

struct W4a8Call {
    const void* codes;      // [n, k] 4-bit codes in the mainloop's reordered layout (w4a8_reorder)
    const void* tables;     // [k / group, n] tables of 8 E4M3 codes (feature fastest)
    const void* x;          // [m, k] E4M3 activations
    const float* x_scales;  // [m]
    const float* w_scales;  // [n]
    void* y;                // [m, n] BF16
    long m, n, k, group;
};

using W4a8Run = bool (*)(const W4a8Call&, void* workspace, size_t workspace_bytes, cudaStream_t, const char** why);
// Reorders [n, k] codes stored row by row (element j of a row in the low nibble of byte j / 2 when j is even) into
// the layout the configuration's mainloop loads: the 4-bit values one thread converts, contiguous.
using W4a8Reorder = void (*)(const void* natural, void* reordered, long n, long k);

struct W4a8Config {
    const char* name;
    W4a8Run run;
    W4a8Reorder reorder;
};

// Tiles are features x tokens x K (CUTLASS runs the product transposed, the weight as its A operand: the operand
// converted in registers must be A).
struct W4a8Spec {
    int tile_features, tile_tokens, cluster_features, cluster_tokens;
    bool pingpong;
    const char* name;
};
constexpr int kW4a8Configs = 4;  // build.sh reads this line
constexpr W4a8Spec kW4a8Specs[kW4a8Configs] = {
    {128, 128, 1, 1, false, "W4A8 cooperative 128x128x128, cluster 1x1"},
    {128, 256, 1, 1, false, "W4A8 cooperative 128x256x128, cluster 1x1"},
    {128, 128, 1, 2, false, "W4A8 cooperative 128x128x128, cluster 1x2"},
    {64, 128, 1, 1, true, "W4A8 pingpong 64x128x128, cluster 1x1"},
};
W4a8Config w4a8_config(int i);

}  // namespace fp8_lab
