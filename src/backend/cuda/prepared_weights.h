#pragma once
// The device forms of a linear layer and of its LoRA branch (CudaBackend::PreparedLinear / PreparedLora), shared by
// linear.cpp and lora_branch.cpp only.
#include <memory>
#include <string>

#include "backend/cuda/cuda_backend_impl.h"

namespace flux2 {

struct CudaBackend::PreparedLinear {
    CudaLinearPrecision kind = CudaLinearPrecision::bf16;
    Tensor weight;  // BF16 or F8_E4M3 [out, in + tail]; undefined when fp4-resident
    Tensor scales;  // F32 [out], fp8 only: W[j, :] ~= weight[j, :in] * scales[j]
    // fp4-resident NVFP4 layers keep their canonical codes [out, in/2] and block scales [out, in/16] instead of
    // `weight`, converted into an E4M3 buffer of the GEMM's call (gemm_fp4_resident).
    Tensor fp4_codes, fp4_block_scales;
    float fp4_scale_2 = 1.0f;
    int64_t out = 0, in = 0;
    // fp8: the LoRA branch whose B codes fill weight's last `tail` columns (fp8_weight_for), kept alive so that
    // its address cannot be taken by another branch's.
    int64_t tail = 0;
    std::shared_ptr<const void> tail_of;
    std::string path;
    std::shared_ptr<const Fp4PreparedWeight> fp4;  // fp4 only (fp4_linear.cpp)
};

struct CudaBackend::PreparedLora {
    Tensor a;  // BF16 [rank, in] (bf16 and fp4 layers)
    Tensor b;  // BF16 [out, rank], for the up-projection beside the GEMM (undefined when carried)
    // fp8 layers: A's E4M3 codes (one scale per row) decoded to F16 [rows, in], as lora_down_fp8.cu reads them, with
    // a row for every column of t it computes (lora_down_fp8_columns), which need not be `rank`.
    Tensor a_codes, a_scales;
    int64_t rank = 0;  // padded: B's columns and t's
    // fp8 layers whose GEMM carries the branch (lora_fp8_tail.h): B's E4M3 codes [out, rank] of the layer's channel
    // scales and the factors [rank] taking t to its codes. Else why not (for the path).
    bool in_gemm = false;
    Tensor tail_codes, tail_factor;
    std::string separate_why;
};

}  // namespace flux2
