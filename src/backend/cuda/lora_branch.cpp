// The LoRA branch of a linear on the GPU: t = x A^T, then t B^T goes into the layer's output as a BF16 cuBLASLt
// GEMM. The base weight's codes are untouched. Where the base GEMM can take a C operand (bf16 and fp8 paths) the
// branch is written first and the base GEMM accumulates onto it (beta = 1), so the wide output is written once
// by the branch and read inside the base GEMM's epilogue, not read and written again by a separate pass; the fp4
// path accumulates the branch after its GEMM.
//
// On the fp8 path the branch reads the same E4M3 activations the base GEMM reads (a fused producer's output or
// the quantized input) through an FP8 down-projection with A quantized per rank row, so a LoRA does not cost the
// layer its fused producer or a second read of BF16 activations.
#include <cuda_bf16.h>

#include <algorithm>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {

namespace {
// The rank is padded with zero rows of A and zero columns of B, which add exact zeros: BF16 rows want 16-byte
// alignment (8 values) and the FP8 down-projection's output dimension a multiple of 16.
constexpr int64_t kRankMultiple = 16;
}  // namespace

struct CudaBackend::PreparedLora {
    Tensor a;           // BF16 [rank, in]
    Tensor b;           // BF16 [out, rank]
    Fp8Activations a8;  // E4M3 [rank, in] with one scale per rank row (made on the first fp8 use)
    int64_t rank = 0;   // padded
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
    // The fp8 path's branch reads E4M3 activations (lora_down below); other paths never need the E4M3 copy.
    if (precision_ == CudaLinearPrecision::fp8) p->a8 = quantize_fp8(p->a);
    l.prepared = p;
    l.prepared_owner = this;
    return *p;
}

void CudaBackend::check_lora(const LinearWeight& w, const Tensor& y) const {
    const LoraBranch& l = *w.lora;
    check(l.in_features == w.in_features && l.out_features == w.out_features && y.dim(-1) == w.out_features, "linear ",
          w.name, ": LoRA branch [", l.out_features, ", ", l.in_features, "] does not match the layer [",
          w.out_features, ", ", w.in_features, "]");
}

Tensor CudaBackend::lora_down(const Tensor& x, const LinearWeight& w) {
    const PreparedLora& p = prepare_lora(*w.lora);
    expect_device_bf16(x, "linear (LoRA branch)", w.name.c_str());
    const int64_t m = x.numel() / w.in_features, k = w.in_features, r = p.rank;
    auto scope = profile_op([&] { return str("lora down bf16 r", r, " ", m, "x", k); }, 2.0 * m * r * k);
    Tensor t = empty({m, r}, DType::BF16);
    gemm_->bf16(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(p.a.raw()),
                static_cast<cuda::bf16*>(t.raw()), m, r, k);
    return t;
}

Tensor CudaBackend::lora_down(const Fp8Activations& x, const LinearWeight& w) {
    const PreparedLora& p = prepare_lora(*w.lora);
    check(p.a8.codes.defined(), "linear ", w.name, ": the LoRA branch was prepared without its E4M3 copy of A");
    const int64_t m = x.codes.dim(0), k = w.in_features, r = p.rank;
    check(x.codes.dim(1) == k, "linear ", w.name, ": LoRA branch takes ", k, " input features, got ", x.codes.dim(1));
    auto scope = profile_op([&] { return str("lora down fp8 r", r, " ", m, "x", k); }, 2.0 * m * r * k);
    Tensor t = empty({m, r}, DType::BF16);
    gemm_->fp8(static_cast<const uint8_t*>(x.codes.raw()), static_cast<const float*>(x.scales.raw()),
               static_cast<const uint8_t*>(p.a8.codes.raw()), static_cast<const float*>(p.a8.scales.raw()),
               static_cast<cuda::bf16*>(t.raw()), m, r, k);
    return t;
}

void CudaBackend::lora_up(const Tensor& t, const LinearWeight& w, Tensor& y, float beta, const Tensor* gate) {
    check_lora(w, y);
    const PreparedLora& p = prepare_lora(*w.lora);
    const int64_t m = t.dim(0), n = w.out_features, r = p.rank;
    check(m * n == y.numel(), "linear ", w.name, ": LoRA output holds ", y.numel(), " values, expected ", m * n);
    const auto* b = static_cast<const cuda::bf16*>(p.b.raw());
    Tensor gated;
    if (gate) {
        // gate * (t B^T) = t (diag(gate) B)^T: the gate goes into B's rows (n x r values, not m x n).
        check(gate->numel() == n, "linear ", w.name, ": LoRA gate has ", gate->numel(), " values, expected ", n);
        gated = empty({n, r}, DType::BF16);
        cuda::launch_scale_rows_by_gate(b, static_cast<const cuda::bf16*>(gate->raw()),
                                        static_cast<cuda::bf16*>(gated.raw()), n, r, stream());
        b = static_cast<const cuda::bf16*>(gated.raw());
    }
    auto scope =
        profile_op([&] { return str("lora up r", r, " ", m, "x", n, beta != 0.0f ? " +=" : ""); }, 2.0 * m * r * n);
    gemm_->bf16(static_cast<const cuda::bf16*>(t.raw()), b, static_cast<cuda::bf16*>(y.raw()), m, n, r, beta);
}

}  // namespace flux2
