// FP8 attention: the quantizing passes and the scratch around either kernel. For cuDNN's FP8 SDPA, as in
// attention_cudnn.cpp, our [B, L, H, Dh] tensors are described on cuDNN's [B, H, L, Dh] dimensions by their strides;
// the E4M3 copies are packed, so one layout serves Q, K, V and O.
#include "backend/cuda/attention_fp8.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cmath>
#include <unordered_map>
#include <vector>

#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/attention_fp8_sm90.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

namespace fe = cudnn_frontend;

namespace {
// Scalar uids follow the AttentionFp8Scale slots, so the variant pack maps each to its float in one loop.
enum Uid : int64_t { kQ = 1, kK, kV, kO, kFirstScale = 16 };

constexpr size_t kAlign = 256;
size_t aligned(size_t bytes) { return (bytes + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Fp8Attention::Fp8Attention(std::shared_ptr<Stream> stream, bool own_kernel)
    : stream_(stream),
      own_kernel_(own_kernel && attention_fp8_sm90_available()),
      graphs_(std::move(stream), "cuDNN FP8 SDPA") {}

Fp8Attention::~Fp8Attention() = default;

bool Fp8Attention::own_kernel_for(int64_t Dh) const { return own_kernel_ && Dh == kAttentionFp8Sm90HeadDim; }

void Fp8Attention::ensure_plan(int64_t B, int64_t L, int64_t H, int64_t Dh) {
    graphs_.ensure({B, L, H, Dh}, [&] {
        auto g = std::make_shared<fe::graph::Graph>();
        g->set_io_data_type(fe::DataType_t::FP8_E4M3)
            .set_intermediate_data_type(fe::DataType_t::FLOAT)
            .set_compute_data_type(fe::DataType_t::FLOAT);
        const std::vector<int64_t> dim{B, H, L, Dh}, stride{L * H * Dh, Dh, H * Dh, 1};
        auto tensor = [&](const char* name, int64_t uid) {
            return g->tensor(
                fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dim).set_stride(stride));
        };
        auto scalar = [](std::shared_ptr<fe::graph::Tensor_attributes> t, int64_t slot) {
            t->set_uid(kFirstScale + slot)
                .set_dim({1, 1, 1, 1})
                .set_stride({1, 1, 1, 1})
                .set_data_type(fe::DataType_t::FLOAT);
            return t;
        };
        auto scale_input = [&](const char* name, int64_t slot) {
            return scalar(g->tensor(fe::graph::Tensor_attributes().set_name(name)), slot);
        };
        auto q = tensor("Q", kQ), k = tensor("K", kK), v = tensor("V", kV);
        auto options = fe::graph::SDPA_fp8_attributes()
                           .set_name("flux2_attention_fp8")
                           .set_generate_stats(false)
                           .set_attn_scale(1.0f / std::sqrt(static_cast<float>(Dh)));
        auto [o, stats, amax_s, amax_o] =
            g->sdpa_fp8(q, k, v, scale_input("Descale_Q", kDescaleQ), scale_input("Descale_K", kDescaleK),
                        scale_input("Descale_V", kDescaleV), scale_input("Descale_S", kDescaleS),
                        scale_input("Scale_S", kScaleS), scale_input("Scale_O", kScaleO), options);
        (void)stats;  // inference: no softmax statistics are produced
        o->set_output(true).set_uid(kO).set_dim(dim).set_stride(stride);
        // cuDNN insists on producing both amaxes; they land beside the scales (nothing reads them).
        scalar(amax_s, kAmaxS)->set_output(true);
        scalar(amax_o, kAmaxO)->set_output(true);
        return g;
    });
}

bool Fp8Attention::has_plan(int64_t B, int64_t L, int64_t H, int64_t Dh) {
    const auto key = std::make_tuple(B, L, H, Dh);
    if (no_plan_.count(key)) return false;
    std::string why;
    if (!supports_head_dim(Dh)) {
        why = str("head dim ", Dh, ": cuDNN's FP8 SDPA takes multiples of 16 up to 256");
    } else {
        try {
            if (!own_kernel_for(Dh)) ensure_plan(B, L, H, Dh);
            if (logged_.insert(key).second)
                log_info("attention [B=", B, ", L=", L, ", H=", H, ", Dh=", Dh, "] runs in FP8 on ",
                         own_kernel_for(Dh) ? "flux2's sm_90a kernel" : "cuDNN's FP8 SDPA");
            return true;
        } catch (const Error& e) {
            why = e.what();
        }
    }
    log_info("attention [B=", B, ", L=", L, ", H=", H, ", Dh=", Dh, "] runs in BF16, not FP8: ", why);
    no_plan_.insert(key);
    return false;
}

void Fp8Attention::run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o,
                       int64_t B, int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row) {
    execute(q, nullptr, nullptr, k, nullptr, nullptr, v, o, B, L, H, Dh, v_row, o_row);
}

void Fp8Attention::run_fp8_qk(const uint8_t* q8, const float* q_descale, const uint8_t* k8, const float* k_descale,
                              const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B, int64_t L, int64_t H, int64_t Dh,
                              int64_t v_row, int64_t o_row) {
    execute(nullptr, q8, q_descale, nullptr, k8, k_descale, v, o, B, L, H, Dh, v_row, o_row);
}

Fp8AttentionCodes Fp8Attention::run_fp8_qk_e4m3_out(const uint8_t* q8, const float* q_descale, const uint8_t* k8,
                                                    const float* k_descale, const __nv_bfloat16* v, int64_t B,
                                                    int64_t L, int64_t H, int64_t Dh, int64_t v_row, uint8_t* o8) {
    return execute(nullptr, q8, q_descale, nullptr, k8, k_descale, v, nullptr, B, L, H, Dh, v_row, 0, o8);
}

const float* Fp8Attention::e4m3_output_descale(const uint8_t* codes, int64_t elements) {
    return reinterpret_cast<const float*>(codes + aligned(static_cast<size_t>(elements))) + kDescaleO;
}

Fp8AttentionCodes Fp8Attention::execute(const __nv_bfloat16* q, const uint8_t* q8_in, const float* q_descale,
                                        const __nv_bfloat16* k, const uint8_t* k8_in, const float* k_descale,
                                        const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B, int64_t L, int64_t H,
                                        int64_t Dh, int64_t v_row, int64_t o_row, uint8_t* o8_out) {
    if (B == 0 || L == 0 || H == 0) return {};
    const int64_t width = H * Dh, rows = B * L;
    if (v_row == 0) v_row = width;
    if (o_row == 0) o_row = width;
    check(supports_head_dim(Dh), "FP8 attention needs a head dim that is a multiple of 16 up to 256, got ", Dh);
    check(v_row % 8 == 0 && o_row % 8 == 0 && v_row >= width && o_row >= width, "FP8 attention: token strides of V (",
          v_row, ") and O (", o_row, ") must be multiples of 8 and at least H * Dh = ", width);
    const bool own = own_kernel_for(Dh);
    if (!own) ensure_plan(B, L, H, Dh);
    // Stream-ordered blocks of the call, so recorded steps allocate them inside their graph like any op output: the
    // E4M3 copies of the inputs go when this call returns; O's codes, the scales and the amax partials in another
    // block, which the returned output keeps for a consumer of O's codes (the single block's row quantizer) while
    // the inputs' copies are gone already: that consumer runs where the step's memory peaks.
    const bool given_qk = q8_in != nullptr;
    const size_t codes = aligned(static_cast<size_t>(rows * width));
    // V's codes: packed for cuDNN, transposed into chunks (padded per head) for ours.
    const size_t v_codes = own ? aligned(static_cast<size_t>(attention_fp8_vt_bytes(B, L, H))) : codes;
    const size_t scales_bytes = aligned(kAttentionFp8ScaleCount * sizeof(float));
    const std::shared_ptr<void> inputs = allocate(v_codes + (given_qk ? 0 : 2 * codes), stream_);  // V [, Q, K]
    const size_t o_codes = o8_out ? 0 : codes;  // O's codes in the block unless the caller gave them a place
    std::shared_ptr<void> block =
        allocate(o_codes + scales_bytes + 3 * kAttentionFp8AmaxBlocks * sizeof(float), stream_);
    auto* base = static_cast<uint8_t*>(block.get());
    uint8_t *v8 = static_cast<uint8_t*>(inputs.get()), *o8 = o8_out ? o8_out : base;
    auto* scales = reinterpret_cast<float*>(base + o_codes);
    auto* partials = reinterpret_cast<float*>(base + o_codes + scales_bytes);
    const uint8_t *q8 = q8_in, *k8 = k8_in;
    if (!given_qk) {
        auto* q_codes = v8 + v_codes;
        auto* k_codes = q_codes + codes;
        if (own) {
            launch_attention_fp8_quantize_qk(q, k, q_codes, k_codes, partials, scales, rows, width, stream_->get());
        } else {
            launch_attention_fp8_quantize(q, k, v, v_row, q_codes, k_codes, v8, partials, scales, rows, width,
                                          stream_->get());
        }
        q8 = q_codes;
        k8 = k_codes;
        q_descale = scales + kDescaleQ;
        k_descale = scales + kDescaleK;
    } else if (!own) {
        launch_attention_fp8_quantize_v(v, v_row, v8, partials, scales, rows, width, stream_->get());
    }
    if (own) {
        launch_attention_fp8_quantize_vt(v, v_row, v8, partials + 2 * kAttentionFp8AmaxBlocks, scales, B, L, H,
                                         stream_->get());
        launch_attention_fp8_sm90(q8, q_descale, k8, k_descale, v8, scales + kDescaleV, o, o_row, o ? nullptr : o8, B,
                                  L, H, stream_->get());
        if (!o) return {block, o8, scales + kDescaleO};
        return {};
    }
    std::unordered_map<int64_t, void*> pack{
        {kQ, const_cast<uint8_t*>(q8)}, {kK, const_cast<uint8_t*>(k8)}, {kV, v8}, {kO, o8}};
    for (int slot = 0; slot < kAttentionFp8ScaleCount; ++slot) pack[kFirstScale + slot] = scales + slot;
    pack[kFirstScale + int64_t{kDescaleQ}] = const_cast<float*>(q_descale);
    pack[kFirstScale + int64_t{kDescaleK}] = const_cast<float*>(k_descale);
    graphs_.execute({B, L, H, Dh}, pack);
    if (!o) {
        check(o8_out || e4m3_output_descale(o8, rows * width) == scales + kDescaleO, "cuDNN FP8 SDPA: O's scale moved");
        return {block, o8, scales + kDescaleO};
    }
    launch_attention_fp8_dequantize(o8, scales + kDescaleO, o, o_row, rows, width, stream_->get());
    return {};
}

}  // namespace flux2::cuda
