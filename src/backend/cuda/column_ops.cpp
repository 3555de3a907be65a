// The column-range ops (Backend::*_into): the row kernels and cuDNN SDPA read and write column ranges of wider
// tensors through their row strides, and copy_into is a strided 2-D copy per sample, so a packed projection is
// never sliced apart and an [attn | mlp] input is never concatenated.
#include "backend/cuda/attention_cudnn.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {

namespace {
using cuda::bf16;

// Checks that columns [col, col + count) exist in the last dim of the BF16 [B, L, C] tensor `t`.
void check_columns(const Tensor& t, int64_t col, int64_t count, const char* op, const char* what) {
    expect_device_bf16(t, op, what);
    check(t.ndim() == 3, op, ": ", what, " must be [B, L, C], got ", shape_str(t.shape()));
    check(col >= 0 && count >= 0 && col + count <= t.dim(2), op, ": columns [", col, ", ", col + count,
          ") out of range for ", what, " ", shape_str(t.shape()));
}

const bf16* at(const Tensor& t, int64_t offset) { return static_cast<const bf16*>(t.raw()) + offset; }
bf16* at(Tensor& t, int64_t offset) { return static_cast<bf16*>(t.raw()) + offset; }
}  // namespace

Tensor CudaBackend::uninitialized(const Shape& shape) { return empty(shape, DType::BF16); }

void CudaBackend::copy_into(const Tensor& x, int64_t col, int64_t count, Tensor& out, int64_t tok, int64_t out_col) {
    FLUX2_PROFILE_OP("copy_into");
    const char* op = "copy_into";
    check_columns(x, col, count, op, "x");
    expect_device_bf16(out, op, "out");
    check(out.ndim() >= 3, op, ": out must be [B, Lo, ...], got ", shape_str(out.shape()));
    const int64_t B = x.dim(0), L = x.dim(1), Cx = x.dim(2), Lo = out.dim(1);
    const int64_t Co = B * Lo != 0 ? out.numel() / (B * Lo) : 0;
    check(out.dim(0) == B && tok >= 0 && tok + L <= Lo, op, ": tokens [", tok, ", ", tok + L, ") of ",
          shape_str(x.shape()), " do not fit out ", shape_str(out.shape()));
    check(out_col >= 0 && out_col + count <= Co, op, ": columns [", out_col, ", ", out_col + count,
          ") out of range for out ", shape_str(out.shape()));
    if (count == 0 || L == 0) return;
    const size_t e = sizeof(bf16);
    for (int64_t b = 0; b < B; ++b)
        FLUX2_CUDA_CHECK(cudaMemcpy2DAsync(at(out, (b * Lo + tok) * Co + out_col), Co * e, at(x, b * L * Cx + col),
                                           Cx * e, count * e, L, cudaMemcpyDeviceToDevice, stream()));
}

void CudaBackend::rms_norm_rope_into(const Tensor& x, int64_t col, const Tensor& norm_weight, const Tensor& cos,
                                     const Tensor& sin, float eps, Tensor& out, int64_t tok) {
    FLUX2_PROFILE_OP("rms_norm_rope");
    const char* op = "rms_norm_rope_into";
    const bool fp8 = out.dtype() == DType::F8_E4M3;  // an FP8 attention_qk_buffer
    if (!fp8) expect_device_bf16(out, op, "out");
    check(out.ndim() == 4, op, ": out must be [B, Lo, H, Dh], got ", shape_str(out.shape()));
    const int64_t H = out.dim(2), Dh = out.dim(3);
    check_columns(x, col, H * Dh, op, "x");
    expect_device_bf16(norm_weight, op, "norm_weight");
    expect_device_bf16(cos, op, "cos");
    expect_device_bf16(sin, op, "sin");
    const int64_t B = x.dim(0), L = x.dim(1), Lo = out.dim(1);
    check(out.dim(0) == B && tok >= 0 && tok + L <= Lo, op, ": tokens [", tok, ", ", tok + L, ") of ",
          shape_str(x.shape()), " do not fit out ", shape_str(out.shape()));
    // The kernel reads bf16 pairs: every head must start on an even column.
    check(Dh % 2 == 0 && col % 2 == 0 && x.dim(2) % 2 == 0, op, ": head dim ", Dh, ", column ", col, " and width ",
          x.dim(2), " must be even");
    check(norm_weight.numel() == Dh, op, ": norm_weight has ", norm_weight.numel(), " elements, expected ", Dh);
    check(cos.shape() == Shape{L, Dh} && sin.shape() == Shape{L, Dh}, op, ": cos/sin must be [", L, ", ", Dh, "], got ",
          shape_str(cos.shape()), " / ", shape_str(sin.shape()));
    const Fp8Qk q8 = fp8 ? fp8_qk_parts(out) : Fp8Qk{};
    cuda::launch_rms_norm_rope_strided(at(x, col), x.dim(2), at(norm_weight, 0), at(cos, 0), at(sin, 0),
                                       fp8 ? nullptr : at(out, 0), q8.codes, q8.descale, B, L, H, Dh, Lo, tok, eps,
                                       stream());
}

void CudaBackend::swiglu_into(const Tensor& x, int64_t col, int64_t m, Tensor& out, int64_t out_col) {
    FLUX2_PROFILE_OP("swiglu");
    const char* op = "swiglu_into";
    check_columns(x, col, 2 * m, op, "x");
    check_columns(out, out_col, m, op, "out");
    check(out.dim(0) == x.dim(0) && out.dim(1) == x.dim(1), op, ": x ", shape_str(x.shape()), " and out ",
          shape_str(out.shape()), " differ in [B, L]");
    cuda::launch_swiglu_strided(at(x, col), x.dim(2), at(out, out_col), out.dim(2), x.dim(0) * x.dim(1), m, stream());
}

std::array<int64_t, 4> CudaBackend::attention_into_dims(const Tensor& q, const Tensor& k, const Tensor& v,
                                                        int64_t v_col, const Tensor* out, int64_t out_col) {
    const char* op = "attention_into";
    const bool fp8_qk = q.dtype() == DType::F8_E4M3;  // FP8 attention_qk_buffers, filled by rms_norm_rope_into
    check(k.dtype() == q.dtype(), op, ": q and k must both be BF16 or both FP8 q/k buffers, got ",
          dtype_name(q.dtype()), " and ", dtype_name(k.dtype()));
    if (!fp8_qk) {
        expect_device_bf16(q, op, "q");
        expect_device_bf16(k, op, "k");
    }
    check(q.ndim() == 4 && q.shape() == k.shape(), op, ": q and k must share one [B, L, H, Dh] shape, got ",
          shape_str(q.shape()), ", ", shape_str(k.shape()));
    const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), Dh = q.dim(3);
    check_columns(v, v_col, H * Dh, op, "v");
    check(v.dim(0) == B && v.dim(1) == L, op, ": v ", shape_str(v.shape()), " must have q's [B, L] = [", B, ", ", L,
          "]");
    if (out) {
        check_columns(*out, out_col, H * Dh, op, "out");
        check(out->dim(0) == B && out->dim(1) == L, op, ": out ", shape_str(out->shape()), " must have q's [B, L] = [",
              B, ", ", L, "]");
    }
    // cuDNN wants 16-byte aligned tensors: column ranges must start on a multiple of 8.
    check(v_col % 8 == 0 && out_col % 8 == 0, op, ": v column ", v_col, " and out column ", out_col,
          " must be multiples of 8");
    return {B, L, H, Dh};
}

void CudaBackend::attention_into(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out,
                                 int64_t out_col) {
    FLUX2_PROFILE_OP("attention");
    const auto [B, L, H, Dh] = attention_into_dims(q, k, v, v_col, &out, out_col);
    if (q.dtype() == DType::F8_E4M3) {
        run_attention_fp8_qk(fp8_qk_parts(q), fp8_qk_parts(k), at(v, v_col), at(out, out_col), B, L, H, Dh, v.dim(2),
                             out.dim(2));
        return;
    }
    run_attention(at(q, 0), at(k, 0), at(v, v_col), at(out, out_col), B, L, H, Dh, v.dim(2), out.dim(2));
}

}  // namespace flux2
