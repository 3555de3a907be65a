#pragma once
// The fp4 path's operands on the device (Blackwell block-scaled FP4 GEMM, see gemm_fp4_cublaslt.h): the prepared
// weight of one NVFP4 layer and the activations quantized for it. Layouts: quant/nvfp4_gemm_layout.h.
#include <optional>

#include "tensor/tensor.h"

namespace flux2 {

// "nvfp4->fp4(...)" in Backend::path_summary().
inline constexpr const char* kFp4PathLabel = "nvfp4->fp4(cublasLt vec16 ue4m3)";
// cuBLASLt's FP4 operands need 16-byte aligned rows: in_features a multiple of 32 elements.
inline constexpr int64_t kFp4KMultiple = 32;

struct Fp4PreparedWeight {
    Tensor codes;                      // U8 [out, in/2], element 2i in the low nibble
    Tensor scales;                     // U8 [fp4_scale_bytes(out, in/16)], E4M3, 128x4 swizzle
    float weight_scale_2 = 1.0f;       // folded into the GEMM alpha
    std::optional<float> input_scale;  // static activation scale; absent -> dynamic amax(x) / (448 * 6)
};

// Activations [rows, K] quantized to NVFP4 for one GEMM. `scalars` holds {alpha, beta = 0, tensor scale, amax
// scratch}: cuBLASLt reads alpha and beta from the device (the dynamic tensor scale never visits the host), and
// alpha = tensor scale * the weight's weight_scale_2 given to the quantizer.
struct Fp4Activations {
    Tensor codes;    // U8 [rows, K/2], element 2i in the low nibble
    Tensor scales;   // U8 [fp4_scale_bytes(rows, K/16)], E4M3, 128x4 swizzle, zero padding
    Tensor scalars;  // F32 [4]
};

}  // namespace flux2
