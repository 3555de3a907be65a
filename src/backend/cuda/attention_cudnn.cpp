// cuDNN SDPA. Our tensors are [B, L, H, Dh]; cuDNN's SDPA is described on [B, H, L, Dh] dimensions, so the
// strides (L*H*Dh, Dh, H*Dh, 1) view the same memory without any transpose.
#include "backend/cuda/attention_cudnn.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cmath>
#include <unordered_map>
#include <vector>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

namespace fe = cudnn_frontend;

namespace {
enum Uid : int64_t { kQ = 1, kK, kV, kO };
}  // namespace

CudnnSdpa::CudnnSdpa(std::shared_ptr<Stream> stream) : stream_(stream), graphs_(std::move(stream), "cuDNN SDPA") {}

CudnnSdpa::~CudnnSdpa() = default;

void CudnnSdpa::run(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
                    int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row) {
    if (B == 0 || L == 0 || H == 0) return;
    if (v_row == 0) v_row = H * Dh;
    if (o_row == 0) o_row = H * Dh;
    if (Dh > 256) {
        if (!wide_) {
            wide_ = std::make_unique<WideHeadAttention>(stream_);
            log_info("attention with head dim ", Dh, " (beyond cuDNN SDPA's 256): cuBLAS Q K^T, softmax, P V");
        }
        wide_->run(q, k, v, o, B, L, H, Dh, v_row, o_row);
        return;
    }
    check(Dh % 8 == 0, "cuDNN SDPA needs a head dim divisible by 8, got ", Dh);
    check(v_row % 8 == 0 && o_row % 8 == 0 && v_row >= H * Dh && o_row >= H * Dh, "cuDNN SDPA: token strides of V (",
          v_row, ") and O (", o_row, ") must be multiples of 8 and at least H * Dh = ", H * Dh);
    const std::vector<int64_t> key{B, L, H, Dh, v_row, o_row};
    graphs_.ensure(key, [&] {
        auto g = std::static_pointer_cast<fe::graph::Graph>(new_bf16_graph());
        // A tensor whose tokens start every `row` elements (H * Dh when packed; wider for a column range).
        const std::vector<int64_t> dim{B, H, L, Dh};
        auto stride = [&](int64_t row) { return std::vector<int64_t>{L * row, Dh, row, 1}; };
        auto tensor = [&](const char* name, int64_t uid, int64_t row) {
            return g->tensor(
                fe::graph::Tensor_attributes().set_name(name).set_uid(uid).set_dim(dim).set_stride(stride(row)));
        };
        auto q = tensor("Q", kQ, H * Dh), k = tensor("K", kK, H * Dh), v = tensor("V", kV, v_row);
        auto options = fe::graph::SDPA_attributes()
                           .set_name("flux2_attention")
                           .set_generate_stats(false)
                           .set_attn_scale(1.0f / std::sqrt(static_cast<float>(Dh)));
        auto [o, stats] = g->sdpa(q, k, v, options);
        (void)stats;  // inference: no softmax statistics are produced
        o->set_output(true).set_uid(kO).set_dim(dim).set_stride(stride(o_row));
        return g;
    });
    std::unordered_map<int64_t, void*> pack{{kQ, const_cast<__nv_bfloat16*>(q)},
                                            {kK, const_cast<__nv_bfloat16*>(k)},
                                            {kV, const_cast<__nv_bfloat16*>(v)},
                                            {kO, o}};
    graphs_.execute(key, pack);
}

}  // namespace flux2::cuda
