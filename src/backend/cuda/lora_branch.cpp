// The LoRA branch of a linear on the GPU: t = x A^T, then y += t B^T as a BF16 cuBLASLt GEMM with beta = 1 and
// C = D = y, so the low-rank product is accumulated into the base GEMM's output (bf16, fp8 or fp4 path alike)
// instead of being written and added in another pass over the activations. The base weight's codes are untouched.
#include <cuda_bf16.h>

#include <algorithm>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {

namespace {
// cuBLASLt's BF16 kernels want 16-byte aligned rows: the rank is padded to a multiple of 8 with zero rows of A
// and zero columns of B, which add exact zeros.
constexpr int64_t kRankMultiple = 8;
}  // namespace

struct CudaBackend::PreparedLora {
    Tensor a;          // BF16 [rank, in]
    Tensor b;          // BF16 [out, rank]
    int64_t rank = 0;  // padded
};

const CudaBackend::PreparedLora& CudaBackend::prepare_lora(const LoraBranch& l) {
    if (l.prepared && l.prepared_owner == this) return *static_cast<const PreparedLora*>(l.prepared.get());
    check(l.rank > 0 && static_cast<int64_t>(l.a.size()) == l.rank * l.in_features &&
              static_cast<int64_t>(l.b.size()) == l.out_features * l.rank,
          "LoRA branch (", l.label, "): A holds ", l.a.size(), " and B ", l.b.size(), " values for rank ", l.rank,
          ", in ", l.in_features, ", out ", l.out_features);
    auto p = std::make_shared<PreparedLora>();
    p->rank = (l.rank + kRankMultiple - 1) / kRankMultiple * kRankMultiple;
    Tensor a = Tensor::zeros({p->rank, l.in_features}), b = Tensor::zeros({l.out_features, p->rank});
    std::copy(l.a.begin(), l.a.end(), a.f32());
    for (int64_t j = 0; j < l.out_features; ++j) {
        std::copy_n(l.b.data() + j * l.rank, l.rank, b.f32() + j * p->rank);
    }
    p->a = upload(a);
    p->b = upload(b);
    l.prepared = p;
    l.prepared_owner = this;
    return *p;
}

void CudaBackend::add_lora(const Tensor& x, const LinearWeight& w, Tensor& y, const Tensor* gate) {
    const LoraBranch& l = *w.lora;
    expect_device_bf16(x, "linear (LoRA branch)", w.name.c_str());
    check(l.in_features == w.in_features && l.out_features == w.out_features && y.dim(-1) == w.out_features, "linear ",
          w.name, ": LoRA branch [", l.out_features, ", ", l.in_features, "] does not match the layer [",
          w.out_features, ", ", w.in_features, "]");
    const PreparedLora& p = prepare_lora(l);
    const int64_t m = x.numel() / w.in_features, n = w.out_features, k = w.in_features, r = p.rank;
    auto scope = profile_op([&] { return str("lora r", r, " ", m, "x", n, "x", k); }, 2.0 * m * r * (n + k));
    Tensor t = empty({m, r}, DType::BF16);
    gemm_->bf16(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(p.a.raw()),
                static_cast<cuda::bf16*>(t.raw()), m, r, k);
    const auto* b = static_cast<const cuda::bf16*>(p.b.raw());
    Tensor gated;
    if (gate) {
        // x += gate * (t B^T) = x + t (diag(gate) B)^T: the gate goes into B's rows (n x r values, not m x n).
        check(gate->numel() == n, "linear ", w.name, ": LoRA gate has ", gate->numel(), " values, expected ", n);
        gated = empty({n, r}, DType::BF16);
        cuda::launch_scale_rows_by_gate(b, static_cast<const cuda::bf16*>(gate->raw()),
                                        static_cast<cuda::bf16*>(gated.raw()), n, r, stream());
        b = static_cast<const cuda::bf16*>(gated.raw());
    }
    gemm_->bf16(static_cast<const cuda::bf16*>(t.raw()), b, static_cast<cuda::bf16*>(y.raw()), m, n, r, 1.0f);
}

}  // namespace flux2
