// The LoRA branch of a linear on the GPU. The base weight's codes are untouched; three ways to run it:
// * fp8 layers with a resident E4M3 weight carry the branch inside their GEMM (lora_fp8_tail.h): t = x A^T from the
//   E4M3 activations the base GEMM reads (lora_down_fp8.cu), its codes written beside them, B's codes beside the
//   weight's, one GEMM over in + rank columns. No second pass over the output.
// * Otherwise t B^T goes into the layer's output as a BF16 cuBLASLt GEMM. Where the base GEMM can take a C operand
//   (bf16 and fp8 paths) the branch is written first and the base GEMM accumulates onto it (beta = 1), so the wide
//   output is written once by the branch and read inside the base GEMM's epilogue; the fp4 path accumulates the
//   branch after its GEMM. On fp8 layers (fp4-resident or streamed weights) t still comes from the E4M3
//   activations, so a LoRA never costs a layer its fused producer.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/launchers.h"
#include "backend/cuda/prepared_weights.h"
#include "core/error.h"
#include "quant/lora_fp8_tail.h"

namespace flux2 {

namespace {
// The rank is padded with zero rows of A and zero columns of B, which add exact zeros: BF16 rows want 16-byte
// alignment (8 values). A branch carried in the FP8 GEMM pads so that the GEMM's rows of in + rank codes are whole
// K tiles of 128 codes: cuBLASLt's kernels for the rest took longer than one more tile (single-block linear1 of dev,
// K = 6144 + 64: 2.51 ms, K = 6144 + 128: 2.29 ms; BM_GemmFp8, docs/PERFORMANCE.md).
constexpr int64_t kRankMultiple = 16;
constexpr int64_t kCarriedKTile = 128;

// Which fp8 layers carry their branch in the GEMM. Carrying costs a kernel writing t's codes (and rescaling the
// codes of the rare token whose branch does not fit the headroom, lora_fp8_tail.h) and up to one more K tile of the
// GEMM; running it beside costs a GEMM reading and writing the layer's output. Carrying is cheaper on every layer
// of FLUX.2 dev (docs/PERFORMANCE.md, "LoRA on the GPU"), so it is the default.
// FLUX2_LORA_FP8_GEMM=0: none (every branch beside its GEMM); =wider: only layers whose output is wider than their
// input; =all (default): every layer that can.
enum class Carry { none, wider_out, all };
Carry carry_policy() {
    static const Carry c = [] {
        const char* v = std::getenv("FLUX2_LORA_FP8_GEMM");
        if (v && std::strcmp(v, "0") == 0) return Carry::none;
        if (v && std::strcmp(v, "all") == 0) return Carry::all;
        if (v && std::strcmp(v, "wider") == 0) return Carry::wider_out;
        return Carry::all;
    }();
    return c;
}
}  // namespace

const CudaBackend::PreparedLora& CudaBackend::prepare_lora(const LinearWeight& w) {
    const LoraBranch& l = *w.lora;
    if (l.prepared && l.prepared_owner == instance_id()) return *static_cast<const PreparedLora*>(l.prepared.get());
    check(l.rank > 0 && static_cast<int64_t>(l.a.size()) == l.rank * l.in_features &&
              static_cast<int64_t>(l.b.size()) == l.out_features * l.rank,
          "LoRA branch (", l.label, "): A holds ", l.a.size(), " and B ", l.b.size(), " values for rank ", l.rank,
          ", in ", l.in_features, ", out ", l.out_features);
    check(l.in_features == w.in_features && l.out_features == w.out_features, "linear ", w.name, ": LoRA branch [",
          l.out_features, ", ", l.in_features, "] does not match the layer [", w.out_features, ", ", w.in_features,
          "]");
    auto p = std::make_shared<PreparedLora>();
    const PreparedLinear& base = prepare(w);
    if (base.kind == CudaLinearPrecision::fp8) {
        if (!base.weight.defined()) {
            p->separate_why = "the weight is converted from NVFP4 before each GEMM";
        } else if (streamed_.count(&w)) {
            p->separate_why = "the weight is streamed";
        } else if (carry_policy() == Carry::none) {
            p->separate_why = "FLUX2_LORA_FP8_GEMM=0";
        } else if (carry_policy() == Carry::wider_out && l.out_features <= l.in_features) {
            p->separate_why = "output not wider than input";
        }
    }
    const bool carry = base.kind == CudaLinearPrecision::fp8 && p->separate_why.empty();
    // A's rows: on fp8 layers as many as the down-projection computes columns of t (lora_down_fp8.cu reads a scale
    // for each; a multiple of 16), not the wider padding of a carried branch's B and t codes; else the rank padded.
    const int64_t padded = (l.rank + kRankMultiple - 1) / kRankMultiple * kRankMultiple;
    const int64_t a_rows = base.kind == CudaLinearPrecision::fp8 ? cuda::lora_down_fp8_columns(l.rank) : padded;
    p->rank =
        carry ? (l.in_features + l.rank + kCarriedKTile - 1) / kCarriedKTile * kCarriedKTile - l.in_features : padded;
    Tensor a = Tensor::zeros({a_rows, l.in_features});
    std::copy(l.a.begin(), l.a.end(), a.f32());
    p->a = upload(a);
    if (base.kind == CudaLinearPrecision::fp8) {
        // The fp8 path's branch reads E4M3 activations with A's E4M3 codes (lora_down_fp8.cu); BF16 A is not needed.
        const Fp8Activations a8 = quantize_fp8(p->a);
        p->a_codes = empty({a_rows, l.in_features}, DType::F16);
        cuda::launch_e4m3_to_f16(static_cast<const uint8_t*>(a8.codes.raw()), static_cast<__half*>(p->a_codes.raw()),
                                 a_rows * l.in_features, stream());
        p->a_scales = a8.scales;
        p->a = Tensor();
        if (carry) {
            check(!recording(), "linear ", w.name, ": a LoRA branch was first used while recording a CUDA graph");
            const std::vector<float> w_scales = download(base.scales).to_vector();
            LoraFp8Tail plan;
            if (plan_lora_fp8_tail(l.b.data(), l.rank, p->rank, l.out_features, w_scales.data(), plan,
                                   p->separate_why)) {
                p->in_gemm = true;
                p->tail_codes = empty({l.out_features, p->rank}, DType::F8_E4M3);
                upload_host(p->tail_codes.raw(), plan.b_codes.data(), plan.b_codes.size());
                p->tail_factor = empty({p->rank}, DType::F32);
                upload_host(p->tail_factor.raw(), plan.t_factor.data(), plan.t_factor.size() * sizeof(float));
            }
        }
    }
    if (!p->in_gemm) {  // the separate up-projection's B
        Tensor b = Tensor::zeros({l.out_features, p->rank});
        for (int64_t j = 0; j < l.out_features; ++j) {
            std::copy_n(l.b.data() + j * l.rank, l.rank, b.f32() + j * p->rank);
        }
        p->b = upload(b);
    }
    l.prepared = p;
    l.prepared_owner = instance_id();
    return *p;
}

const CudaBackend::PreparedLora* CudaBackend::carried_lora(const LinearWeight& w) {
    if (!w.lora) return nullptr;
    const PreparedLora& p = prepare_lora(w);
    return p.in_gemm ? &p : nullptr;
}

void CudaBackend::check_lora(const LinearWeight& w, const Tensor& y, int64_t begin) const {
    const LoraBranch& l = *w.lora;
    check(l.in_features == w.in_features && l.out_features == w.out_features, "linear ", w.name, ": LoRA branch [",
          l.out_features, ", ", l.in_features, "] does not match the layer [", w.out_features, ", ", w.in_features,
          "]");
    w.check_rows(begin, y.dim(-1));
}

Tensor CudaBackend::lora_down(const Tensor& x, const LinearWeight& w) {
    const PreparedLora& p = prepare_lora(w);
    expect_device_bf16(x, "linear (LoRA branch)", w.name.c_str());
    check(p.a.defined(), "linear ", w.name, ": its LoRA branch was prepared for E4M3 activations, got BF16");
    const int64_t m = x.numel() / w.in_features, k = w.in_features, r = p.rank;
    auto scope = profile_op([&] { return str("lora down bf16 r", r, " ", m, "x", k); }, 2.0 * m * r * k);
    Tensor t = empty({m, r}, DType::BF16);
    gemm_->bf16(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(p.a.raw()),
                static_cast<cuda::bf16*>(t.raw()), m, r, k);
    return t;
}

Tensor CudaBackend::lora_down_partials(const Fp8Activations& x, const LinearWeight& w, cuda::LoraDownSplit& split) {
    const PreparedLora& p = prepare_lora(w);
    check(p.a_codes.defined(), "linear ", w.name, ": the LoRA branch was prepared without its E4M3 copy of A");
    const int64_t m = x.codes.dim(0), k = w.in_features, ld = x.codes.dim(1);
    check(ld >= k, "linear ", w.name, ": LoRA branch takes ", k, " input features, got ", ld);
    // Only the branch's own rank is computed; the padding's columns of t are zeros (lora_down_fp8.cu).
    split = cuda::plan_lora_down_fp8(m, k, w.lora->rank, sm_count_);
    check(p.a_codes.dim(0) >= split.r_tot, "linear ", w.name, ": the LoRA down-projection computes ", split.r_tot,
          " columns but A was prepared with ", p.a_codes.dim(0), " rows");
    Tensor partials = empty({split.splits * m * split.r_tot}, DType::F32);
    auto scope =
        profile_op([&] { return str("lora down fp8 r", w.lora->rank, " ", m, "x", k, " split ", split.splits); },
                   2.0 * m * split.r_tot * k);
    cuda::launch_lora_down_fp8(static_cast<const uint8_t*>(x.codes.raw()), ld,
                               static_cast<const __half*>(p.a_codes.raw()), p.a_codes.dim(0), m, k, split,
                               static_cast<float*>(partials.raw()), stream());
    return partials;
}

Tensor CudaBackend::lora_down(const Fp8Activations& x, const LinearWeight& w) {
    const PreparedLora& p = prepare_lora(w);
    cuda::LoraDownSplit split;
    const Tensor partials = lora_down_partials(x, w, split);
    const int64_t m = x.codes.dim(0);
    Tensor t = empty({m, p.rank}, DType::BF16);
    FLUX2_PROFILE_OP("lora down fp8: sum of the splits");
    cuda::launch_lora_down_bf16(static_cast<const float*>(partials.raw()), split,
                                static_cast<const float*>(x.scales.raw()), static_cast<const float*>(p.a_scales.raw()),
                                static_cast<cuda::bf16*>(t.raw()), m, p.rank, stream());
    return t;
}

void CudaBackend::carry_lora_codes(const Fp8Activations& x, const LinearWeight& w) {
    const PreparedLora& p = prepare_lora(w);
    check(p.in_gemm, "linear ", w.name, ": its LoRA branch runs beside the GEMM, not in it");
    cuda::LoraDownSplit split;
    const Tensor partials = lora_down_partials(x, w, split);
    FLUX2_PROFILE_OP("lora codes beside the activations");
    cuda::launch_lora_tail_fp8(
        static_cast<const float*>(partials.raw()), split, static_cast<const float*>(p.a_scales.raw()),
        static_cast<const float*>(p.tail_factor.raw()), e4m3_rows(x), x.codes.dim(0), w.in_features, p.rank, stream());
}

void CudaBackend::lora_up(const Tensor& t, const LinearWeight& w, Tensor& y, float beta, const Tensor* gate,
                          int64_t begin) {
    check_lora(w, y, begin);
    const PreparedLora& p = prepare_lora(w);
    const int64_t m = t.dim(0), n = y.dim(-1), r = p.rank;
    check(m * n == y.numel(), "linear ", w.name, ": LoRA output holds ", y.numel(), " values, expected ", m * n);
    check(p.b.defined(), "linear ", w.name, ": the LoRA branch is carried in the FP8 GEMM, not run beside it");
    const auto* b = static_cast<const cuda::bf16*>(p.b.raw()) + begin * r;
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

std::string CudaBackend::lora_path(const LinearWeight& w) {
    if (!w.lora) return "";
    const PreparedLora& p = prepare_lora(w);
    if (p.in_gemm) return str(" + lora r", w.lora->rank, " in the fp8 GEMM");
    if (!p.separate_why.empty()) return str(" + lora r", w.lora->rank, " (separate GEMMs: ", p.separate_why, ")");
    return str(" + lora r", w.lora->rank);
}

}  // namespace flux2
