// CudaBackend::attention: shape checks, then cuDNN SDPA in BF16 (attention_cudnn.cpp) or FP8 (attention_fp8.cpp:
// flux2's sm_90a kernel or cuDNN's);
// and the FP8 q/k buffers that rms_norm_rope_into fills for it.
#include <cmath>
#include <utility>

#include "backend/cuda/attention_cudnn.h"
#include "backend/cuda/attention_fp8.h"
#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launchers.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2 {

Tensor CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v) {
    FLUX2_PROFILE_OP("attention");
    expect_device_bf16(q, "attention", "q");
    expect_device_bf16(k, "attention", "k");
    expect_device_bf16(v, "attention", "v");
    check(q.ndim() == 4 && q.shape() == k.shape() && q.shape() == v.shape(),
          "attention: q, k, v must share one [B, L, H, Dh] shape, got ", shape_str(q.shape()), ", ",
          shape_str(k.shape()), ", ", shape_str(v.shape()));
    const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), Dh = q.dim(3);
    Tensor out = empty({B, L, H * Dh}, DType::BF16);
    run_attention(static_cast<const cuda::bf16*>(q.raw()), static_cast<const cuda::bf16*>(k.raw()),
                  static_cast<const cuda::bf16*>(v.raw()), static_cast<cuda::bf16*>(out.raw()), B, L, H, Dh, H * Dh,
                  H * Dh);
    return out;
}

void CudaBackend::run_attention(const cuda::bf16* q, const cuda::bf16* k, const cuda::bf16* v, cuda::bf16* o, int64_t B,
                                int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row) {
    // A shape FP8 attention cannot take runs in BF16; has_plan says so once per shape.
    const bool fp8 = fp8_attention_ && sdpa_fp8_->has_plan(B, L, H, Dh);
    // Counted beside the linear paths.
    if (!recording())
        count_path(str("attention->", fp8 ? sdpa_fp8_->path(Dh) : "bf16"));  // as linear(): calls that ran
    if (!fp8) {
        sdpa_->run(q, k, v, o, B, L, H, Dh, v_row, o_row);
        return;
    }
    sdpa_fp8_->run(q, k, v, o, B, L, H, Dh, v_row, o_row);
    if (!options_.check_attention) return;
    // --attention-error: the BF16 attention of the same inputs, and the squared error sums of ours against it.
    Tensor reference = empty({B, L, H * Dh}, DType::BF16), sums = empty({2}, DType::F32);
    sdpa_->run(q, k, v, static_cast<cuda::bf16*>(reference.raw()), B, L, H, Dh, v_row, 0);
    cuda::launch_attention_error_sums(o, o_row, static_cast<const cuda::bf16*>(reference.raw()), H * Dh,
                                      static_cast<float*>(sums.raw()), B * L, H * Dh, stream());
    attention_checks_.emplace_back(str("[", B, ", ", L, ", ", H, ", ", Dh, "]"), sums);
}

void CudaBackend::run_attention_fp8_qk(const Fp8Qk& q, const Fp8Qk& k, const cuda::bf16* v, cuda::bf16* o, int64_t B,
                                       int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row) {
    if (!recording()) count_path(str("attention->", sdpa_fp8_->path(Dh)));
    sdpa_fp8_->run_fp8_qk(q.codes, q.descale, k.codes, k.descale, v, o, B, L, H, Dh, v_row, o_row);
}

cuda::Fp8AttentionCodes CudaBackend::attention_e4m3(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col,
                                                    uint8_t* o8) {
    const auto [B, L, H, Dh] = attention_into_dims(q, k, v, v_col, nullptr, 0);
    if (!recording()) count_path(str("attention->", sdpa_fp8_->path(Dh)));
    const Fp8Qk qp = fp8_qk_parts(q), kp = fp8_qk_parts(k);
    return sdpa_fp8_->run_fp8_qk_e4m3_out(qp.codes, qp.descale, kp.codes, kp.descale,
                                          static_cast<const cuda::bf16*>(v.raw()) + v_col, B, L, H, Dh, v.dim(2), o8);
}

Tensor CudaBackend::attention_beside_for(const LinearWeight& next, Tensor q, Tensor k, const Tensor& v, int64_t v_col,
                                         int64_t m) {
    // FP8 q/k buffers exist only where FP8 attention has a plan for the shape (attention_qk_buffer).
    const bool fp8_qk = q.dtype() == DType::F8_E4M3 && q.ndim() == 4;
    const bool direct = attention_e4m3_out_ && fp8_qk && quantizes_beside(next, q.dim(2) * q.dim(3) + m);
    if (!direct) return Backend::attention_beside_for(next, std::move(q), std::move(k), v, v_col, m);
    FLUX2_PROFILE_OP("attention");
    // The attention stays E4M3 (swiglu_beside_for reads its codes): no BF16 [attn | mlp] row is made.
    const cuda::Fp8AttentionCodes o = attention_e4m3(q, k, v, v_col);
    return Tensor::wrap(q.shape(), DType::F8_E4M3, Device::cuda, const_cast<uint8_t*>(o.codes), o.block);
}

std::array<Tensor, 2> CudaBackend::attention_split_for(const LinearWeight& text_next, const LinearWeight& image_next,
                                                       Tensor q, Tensor k, const Tensor& v, int64_t v_col,
                                                       int64_t split) {
    // O's codes serve an FP8 layer as they are unless it carries a LoRA branch, whose codes would go beside them
    // under a scale with headroom (lora_fp8_tail.h).
    auto takes_codes = [&](const LinearWeight& w) { return takes_fp8_input(w) && !carried_lora(w); };
    const bool fp8_qk = q.dtype() == DType::F8_E4M3 && q.ndim() == 4;
    // The image rows become a view of the whole codes tensor (below), which needs one sample and 16-byte rows.
    if (!attention_e4m3_out_ || !fp8_qk || q.dim(0) != 1 || (q.dim(2) * q.dim(3)) % 16 != 0 || !takes_codes(image_next))
        return Backend::attention_split_for(text_next, image_next, std::move(q), std::move(k), v, v_col, split);
    const int64_t L = q.dim(1), Da = q.dim(2) * q.dim(3);
    check(split >= 0 && split <= L, "attention_split_for: split at token ", split, " of ", L);
    FLUX2_PROFILE_OP("attention -> fp8 rows");
    // Every row's codes in an FP8 linear's input form (codes, then a scale a row); the attention writes them there.
    Tensor all = quantized_activations({1, L, Da}, Da);
    const Fp8Activations parts = fp8_parts(all);
    auto* codes = static_cast<uint8_t*>(parts.codes.raw());
    const cuda::Fp8AttentionCodes o = attention_e4m3(q, k, v, v_col, codes);
    q = k = Tensor();
    // The image rows, the last L - split, as a tensor of their own: their codes are a view, and the scales such a
    // tensor finds after its codes (fp8_parts) are the whole tensor's first L - split, which are all that is filled.
    cuda::launch_attention_fp8_row_scales(o.descale, static_cast<float*>(parts.scales.raw()), L - split, stream());
    const size_t at = static_cast<size_t>(split * Da);
    Tensor image = all.view({1, L - split, Da}, DType::F8_E4M3, at);
    check(fp8_parts(image).scales.raw() == parts.scales.raw(), "attention_split_for: the image rows' scales moved");
    Tensor text;
    if (takes_codes(text_next)) {
        text = quantized_activations({1, split, Da}, Da);
        const Fp8Activations t = fp8_parts(text);
        if (split) FLUX2_CUDA_CHECK(cudaMemcpyAsync(t.codes.raw(), codes, at, cudaMemcpyDeviceToDevice, stream()));
        cuda::launch_attention_fp8_row_scales(o.descale, static_cast<float*>(t.scales.raw()), split, stream());
    } else {
        text = empty({1, split, Da}, DType::BF16);
        cuda::launch_attention_fp8_dequantize(codes, o.descale, static_cast<cuda::bf16*>(text.raw()), Da, split, Da,
                                              stream());
    }
    return {text, image};
}

namespace {
size_t qk_descale_offset(int64_t elements) { return (static_cast<size_t>(elements) + 15) / 16 * 16; }
}  // namespace

Tensor CudaBackend::attention_qk_buffer(const Shape& shape, const std::vector<const Tensor*>& norm_weights) {
    check(shape.size() == 4, "attention_qk_buffer: expected [B, L, H, Dh], got ", shape_str(shape));
    const int64_t B = shape[0], L = shape[1], H = shape[2], Dh = shape[3];
    check(norm_weights.size() == 1 || norm_weights.size() == 2, "attention_qk_buffer: one or two gains, got ",
          norm_weights.size());
    for (const Tensor* w : norm_weights) {
        expect_device_bf16(*w, "attention_qk_buffer", "norm_weight");
        check(w->numel() == Dh, "attention_qk_buffer: a gain of ", w->numel(), " elements for head dim ", Dh);
    }
    // --attention-error compares each FP8 attention with the BF16 one of the same BF16 inputs: keep those.
    if (!fp8_attention_ || options_.check_attention || !sdpa_fp8_->has_plan(B, L, H, Dh))
        return empty(shape, DType::BF16);
    const int64_t n = shape_numel(shape);
    Tensor bytes = empty({static_cast<int64_t>(qk_descale_offset(n)) + 4}, DType::U8);
    Tensor qk = bytes.view(shape, DType::F8_E4M3, 0);
    const Fp8Qk parts = fp8_qk_parts(qk);
    cuda::launch_qk_fp8_descale(
        static_cast<const cuda::bf16*>(norm_weights[0]->raw()),
        norm_weights.size() > 1 ? static_cast<const cuda::bf16*>(norm_weights[1]->raw()) : nullptr, Dh, parts.descale,
        stream());
    return qk;
}

Fp8Qk CudaBackend::fp8_qk_parts(const Tensor& qk) {
    check(qk.dtype() == DType::F8_E4M3 && qk.device() == Device::cuda && qk.ndim() == 4,
          "fp8_qk_parts: expected an FP8 q/k buffer (F8_E4M3 [B, L, H, Dh] on the GPU), got ", dtype_name(qk.dtype()),
          " ", shape_str(qk.shape()));
    auto* base = static_cast<uint8_t*>(qk.raw());
    return {base, reinterpret_cast<float*>(base + qk_descale_offset(qk.numel()))};
}

std::vector<Backend::AttentionError> CudaBackend::attention_errors() {
    std::vector<AttentionError> errors;
    for (const auto& [shape, sums] : attention_checks_) {
        std::vector<float> s = download(sums).to_vector();
        errors.push_back({shape, s[1] > 0 ? std::sqrt(static_cast<double>(s[0]) / s[1]) : 0.0});
    }
    attention_checks_.clear();
    return errors;
}

}  // namespace flux2
