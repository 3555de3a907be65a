#pragma once
// Raw-pointer launchers of the fp4 path (launchers.h conventions).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace flux2::cuda {

// BF16 x [rows, cols] (cols % 16 == 0) -> NVFP4 codes [rows, cols/2] (low nibble first) and E4M3 block scales in
// the 128x4 swizzle of the [rows, cols/16] matrix (padding zeroed), with quant/nvfp4.h fake_quantize_nvfp4's
// numerics. tensor scale = input_scale when `dynamic` is false, else amax(|x|) / (448 * 6) reduced on the device.
// Writes scalars[0] = tensor scale * alpha_factor (the GEMM alpha), scalars[1] = 0 (beta), scalars[2] = tensor
// scale; scalars[3] is scratch for the amax.
void launch_quantize_nvfp4(const __nv_bfloat16* x, uint8_t* codes, uint8_t* scales, float* scalars, int64_t rows,
                           int64_t cols, bool dynamic, float input_scale, float alpha_factor, cudaStream_t stream);

}  // namespace flux2::cuda
