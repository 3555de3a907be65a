#pragma once
// Joint attention in FP8 through cuDNN's FP8 SDPA (Hopper and newer): Q, K and V quantized to E4M3 with one scale
// per tensor (computed on the device from each tensor's amax; or Q and K given as E4M3 by the norm kernel), the softmax
// probabilities in E4M3 (1 -> 448), the output in E4M3 with V's scale (|O| <= amax(V)) and dequantized into the BF16
// destination (or left in E4M3 for a consumer that reads it so). Same contract as CudnnSdpa::run for the head dims it
// supports; one execution plan per shape, built on first use and cached.
#include <cuda_bf16.h>

#include <cstdint>
#include <memory>
#include <set>
#include <tuple>

#include "backend/cuda/cudnn_sdpa_graphs.h"
#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

class CudnnSdpaFp8 {
public:
    explicit CudnnSdpaFp8(std::shared_ptr<Stream> stream);
    ~CudnnSdpaFp8();
    CudnnSdpaFp8(const CudnnSdpaFp8&) = delete;
    CudnnSdpaFp8& operator=(const CudnnSdpaFp8&) = delete;

    // cuDNN's FP8 SDPA on Hopper takes head dims that are multiples of 16 up to 256.
    static bool supports_head_dim(int64_t Dh) { return Dh > 0 && Dh <= 256 && Dh % 16 == 0; }
    // Whether cuDNN has an FP8 plan for this shape (built and cached here); a shape it has none for is logged with
    // the reason the first time, and runs in BF16 (the caller's fallback).
    bool has_plan(int64_t B, int64_t L, int64_t H, int64_t Dh);

    // q, k: BF16 [B, L, H, Dh] packed; v, o: BF16 with tokens v_row / o_row elements apart (0 = packed); Dh as
    // supports_head_dim, v_row and o_row multiples of 8, pointers 16-byte aligned.
    void run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
             int64_t L, int64_t H, int64_t Dh, int64_t v_row = 0, int64_t o_row = 0);

    // The same with Q and K already E4M3 (q8, k8 packed [B, L, H, Dh]; *q_descale and *k_descale on the device
    // turn their codes back into values): only V is measured and converted here.
    void run_fp8_qk(const uint8_t* q8, const float* q_descale, const uint8_t* k8, const float* k_descale,
                    const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B, int64_t L, int64_t H, int64_t Dh,
                    int64_t v_row = 0, int64_t o_row = 0);

    // O as cuDNN leaves it: packed E4M3 codes [B, L, H, Dh] and the device scalar that turns them into values, in a
    // stream-ordered block that is freed (in stream order) when the last copy of `block` goes.
    struct E4m3Output {
        std::shared_ptr<void> block;
        const uint8_t* codes = nullptr;
        const float* descale = nullptr;
    };
    // run_fp8_qk without the conversion of O to BF16: for a consumer that reads the codes itself (the single
    // block's row quantizer, launch_swiglu_beside_fp8_e4m3).
    E4m3Output run_fp8_qk_e4m3_out(const uint8_t* q8, const float* q_descale, const uint8_t* k8, const float* k_descale,
                                   const __nv_bfloat16* v, int64_t B, int64_t L, int64_t H, int64_t Dh,
                                   int64_t v_row = 0);
    // Where the scale of such an output lies, from its codes (`elements` of them): it travels as a tensor of its
    // codes (CudaBackend::attention_beside_for), and its block keeps the scales at a fixed place after them.
    static const float* e4m3_output_descale(const uint8_t* codes, int64_t elements);

private:
    // Builds the plan of this shape (or throws why not).
    void ensure_plan(int64_t B, int64_t L, int64_t H, int64_t Dh);
    // run / run_fp8_qk: Q and K as BF16 (q, k) to quantize here, or as E4M3 codes with their descales. O goes to o
    // in BF16, or with o null stays E4M3 in the returned block.
    E4m3Output execute(const __nv_bfloat16* q, const uint8_t* q8, const float* q_descale, const __nv_bfloat16* k,
                       const uint8_t* k8, const float* k_descale, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
                       int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row);

    std::shared_ptr<Stream> stream_;
    SdpaGraphs graphs_;                                                 // one per (B, L, H, Dh)
    std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> no_plan_;  // shapes refused (and logged) already
};

}  // namespace flux2::cuda
