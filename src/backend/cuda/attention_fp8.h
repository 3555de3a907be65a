#pragma once
// Joint attention in FP8 (Hopper and newer): Q, K and V quantized to E4M3 with one scale per tensor (computed on the
// device from each tensor's amax; or Q and K given as E4M3 by the norm kernel), the softmax probabilities in E4M3
// (1 -> 448), the output in BF16 or left in E4M3 with V's scale (|O| <= amax(V)) for a consumer that reads it so.
// Two kernels behind one contract: cuDNN's FP8 SDPA (one execution plan per shape, built on first use and cached;
// its E4M3 output is dequantized by a pass of ours), and, where the caller asks for it, flux2's own for head dim 128
// on sm_90 (attention_fp8_sm90.h: V goes in transposed, O straight to BF16).
#include <cuda_bf16.h>

#include <cstdint>
#include <memory>
#include <set>
#include <tuple>

#include "backend/cuda/cudnn_sdpa_graphs.h"
#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

// O in E4M3: packed codes [B, L, H, Dh] and the device scalar that turns them into values, in a stream-ordered
// block that is freed (in stream order) when the last copy of `block` goes. At namespace scope so that
// cuda_backend_impl.h can declare functions returning it from a forward declaration.
struct Fp8AttentionCodes {
    std::shared_ptr<void> block;
    const uint8_t* codes = nullptr;
    const float* descale = nullptr;
};

class Fp8Attention {
public:
    // own_kernel: flux2's kernel where it runs (head dim 128, sm_90a), cuDNN's FP8 SDPA for the other shapes; else
    // cuDNN's for every shape.
    Fp8Attention(std::shared_ptr<Stream> stream, bool own_kernel);
    ~Fp8Attention();
    Fp8Attention(const Fp8Attention&) = delete;
    Fp8Attention& operator=(const Fp8Attention&) = delete;

    // cuDNN's FP8 SDPA on Hopper takes head dims that are multiples of 16 up to 256 (ours takes 128 of them).
    static bool supports_head_dim(int64_t Dh) { return Dh > 0 && Dh <= 256 && Dh % 16 == 0; }
    // Whether this shape runs in FP8 (cuDNN's plan built and cached here where it takes the shape); a shape with
    // no FP8 kernel is logged with the reason the first time, and runs in BF16 (the caller's fallback). The kernel a
    // shape takes is logged the first time too.
    bool has_plan(int64_t B, int64_t L, int64_t H, int64_t Dh);
    // The path counter's name of the kernel that runs head dim Dh: "fp8(sm90)" (ours) or "fp8(cudnn)".
    const char* path(int64_t Dh) const { return own_kernel_for(Dh) ? "fp8(sm90)" : "fp8(cudnn)"; }

    // q, k: BF16 [B, L, H, Dh] packed; v, o: BF16 with tokens v_row / o_row elements apart (0 = packed); Dh as
    // supports_head_dim, v_row and o_row multiples of 8, pointers 16-byte aligned.
    void run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
             int64_t L, int64_t H, int64_t Dh, int64_t v_row = 0, int64_t o_row = 0);

    // The same with Q and K already E4M3 (q8, k8 packed [B, L, H, Dh]; *q_descale and *k_descale on the device
    // turn their codes back into values): only V is measured and converted here.
    void run_fp8_qk(const uint8_t* q8, const float* q_descale, const uint8_t* k8, const float* k_descale,
                    const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B, int64_t L, int64_t H, int64_t Dh,
                    int64_t v_row = 0, int64_t o_row = 0);

    // run_fp8_qk without the conversion of O to BF16: for a consumer that reads the codes itself (the single
    // block's row quantizer, launch_swiglu_beside_fp8_e4m3), or that takes them as they are (the double block's
    // output projections). With o8 given, the codes go there (packed [B, L, H, Dh]) and the block holds the scales
    // alone; e4m3_output_descale does not apply then.
    Fp8AttentionCodes run_fp8_qk_e4m3_out(const uint8_t* q8, const float* q_descale, const uint8_t* k8,
                                          const float* k_descale, const __nv_bfloat16* v, int64_t B, int64_t L,
                                          int64_t H, int64_t Dh, int64_t v_row = 0, uint8_t* o8 = nullptr);
    // Where the scale of such an output lies, from its codes (`elements` of them): it travels as a tensor of its
    // codes (CudaBackend::attention_beside_for), and its block keeps the scales at a fixed place after them.
    static const float* e4m3_output_descale(const uint8_t* codes, int64_t elements);

private:
    bool own_kernel_for(int64_t Dh) const;
    // Builds cuDNN's plan of this shape (or throws why not).
    void ensure_plan(int64_t B, int64_t L, int64_t H, int64_t Dh);
    // run / run_fp8_qk: Q and K as BF16 (q, k) to quantize here, or as E4M3 codes with their descales. O goes to o
    // in BF16, or with o null stays E4M3: in o8_out when given, else in the returned block.
    Fp8AttentionCodes execute(const __nv_bfloat16* q, const uint8_t* q8, const float* q_descale, const __nv_bfloat16* k,
                              const uint8_t* k8, const float* k_descale, const __nv_bfloat16* v, __nv_bfloat16* o,
                              int64_t B, int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row,
                              uint8_t* o8_out = nullptr);

    std::shared_ptr<Stream> stream_;
    bool own_kernel_;                                                   // asked for and available on this GPU and build
    SdpaGraphs graphs_;                                                 // one per (B, L, H, Dh)
    std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> no_plan_;  // shapes refused (and logged) already
    std::set<std::tuple<int64_t, int64_t, int64_t, int64_t>> logged_;   // shapes whose kernel was logged
};

}  // namespace flux2::cuda
