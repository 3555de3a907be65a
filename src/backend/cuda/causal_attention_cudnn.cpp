// cuDNN causal SDPA. As in attention_cudnn.cpp, our [B, L, H, Dh] tensors are described on cuDNN's [B, H, L, Dh]
// dimensions by their strides; K and V have Hkv heads (grouped-query attention), the bias one head broadcast to all.
#include "backend/cuda/causal_attention_cudnn.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cmath>
#include <unordered_map>
#include <vector>

#include "backend/cuda/cudnn_handle.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

namespace fe = cudnn_frontend;

namespace {
enum Uid : int64_t { kQ = 1, kK, kV, kO, kBias };
}  // namespace

CudnnCausalSdpa::CudnnCausalSdpa(std::shared_ptr<Stream> stream) : graphs_(std::move(stream), "cuDNN causal SDPA") {}

CudnnCausalSdpa::~CudnnCausalSdpa() = default;

void CudnnCausalSdpa::ensure_plan(int64_t B, int64_t L, int64_t H, int64_t Hkv, int64_t Dh) {
    graphs_.ensure({B, L, H, Dh, Hkv}, [&] {
        auto g = std::static_pointer_cast<fe::graph::Graph>(new_bf16_graph());
        auto tensor = [&](const char* name, int64_t uid, int64_t heads) {
            return g->tensor(fe::graph::Tensor_attributes()
                                 .set_name(name)
                                 .set_uid(uid)
                                 .set_dim({B, heads, L, Dh})
                                 .set_stride({L * heads * Dh, Dh, heads * Dh, 1}));
        };
        const int64_t row = bias_row(L);
        auto bias = g->tensor(fe::graph::Tensor_attributes()
                                  .set_name("Bias")
                                  .set_uid(kBias)
                                  .set_dim({B, 1, L, L})
                                  .set_stride({L * row, L * row, row, 1}));
        auto q = tensor("Q", kQ, H), k = tensor("K", kK, Hkv), v = tensor("V", kV, Hkv);
        auto options = fe::graph::SDPA_attributes()
                           .set_name("flux2_causal_attention")
                           .set_generate_stats(false)
                           .set_causal_mask(true)
                           .set_bias(bias)
                           .set_attn_scale(1.0f / std::sqrt(static_cast<float>(Dh)));
        auto [o, stats] = g->sdpa(q, k, v, options);
        (void)stats;  // inference: no softmax statistics are produced
        o->set_output(true).set_uid(kO).set_dim({B, H, L, Dh}).set_stride({L * H * Dh, Dh, H * Dh, 1});
        return g;
    });
}

bool CudnnCausalSdpa::has_plan(int64_t B, int64_t L, int64_t H, int64_t Hkv, int64_t Dh) {
    const auto key = std::make_tuple(B, L, H, Hkv, Dh);
    if (no_plan_.count(key)) return false;
    std::string why;
    if (Dh % 8 != 0 || Dh > 256) {
        why = str("head dim ", Dh, ": cuDNN's SDPA takes multiples of 8 up to 256");
    } else {
        try {
            ensure_plan(B, L, H, Hkv, Dh);
            return true;
        } catch (const Error& e) {
            why = e.what();
        }
    }
    log_info("causal attention [B=", B, ", L=", L, ", H=", H, ", Hkv=", Hkv, ", Dh=", Dh,
             "] runs on flux2's own kernel (one warp per query), not cuDNN: ", why);
    no_plan_.insert(key);
    return false;
}

void CudnnCausalSdpa::run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                          const __nv_bfloat16* bias, __nv_bfloat16* o, int64_t B, int64_t L, int64_t H, int64_t Hkv,
                          int64_t Dh, int64_t bias_row_elements) {
    if (B == 0 || L == 0 || H == 0) return;
    check(bias_row_elements == bias_row(L), "cuDNN causal SDPA: bias rows of ", bias_row_elements,
          " elements, expected ", bias_row(L));
    ensure_plan(B, L, H, Hkv, Dh);
    std::unordered_map<int64_t, void*> pack{{kQ, const_cast<__nv_bfloat16*>(q)},
                                            {kK, const_cast<__nv_bfloat16*>(k)},
                                            {kV, const_cast<__nv_bfloat16*>(v)},
                                            {kBias, const_cast<__nv_bfloat16*>(bias)},
                                            {kO, o}};
    graphs_.execute({B, L, H, Dh, Hkv}, pack);
}

}  // namespace flux2::cuda
