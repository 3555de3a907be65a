// The column-range ops on the CPU: fp32 compositions of slice + the plain op + a block copy, so they are the
// reference the fused GPU kernels are tested against.
#include <algorithm>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace flux2 {

namespace {
// Checks that columns [col, col + count) exist in the last dim of a [B, L, C] tensor named `what`.
void check_columns(const Tensor& t, int64_t col, int64_t count, const char* op, const char* what) {
    check(t.ndim() == 3, op, ": ", what, " must be [B, L, C], got ", shape_str(t.shape()));
    check(col >= 0 && count >= 0 && col + count <= t.dim(2), op, ": columns [", col, ", ", col + count,
          ") out of range for ", what, " ", shape_str(t.shape()));
}
}  // namespace

Tensor CpuBackend::uninitialized(const Shape& shape) { return Tensor::zeros(shape); }

void CpuBackend::copy_into(const Tensor& x, int64_t col, int64_t count, Tensor& out, int64_t tok, int64_t out_col) {
    const char* op = "copy_into";
    check_columns(x, col, count, op, "x");
    check(out.ndim() >= 3, op, ": out must be [B, Lo, ...], got ", shape_str(out.shape()));
    const int64_t B = x.dim(0), L = x.dim(1), Lo = out.dim(1), Co = out.numel() / std::max<int64_t>(B * Lo, 1);
    check(out.dim(0) == B && tok >= 0 && tok + L <= Lo, op, ": tokens [", tok, ", ", tok + L, ") of ",
          shape_str(x.shape()), " do not fit out ", shape_str(out.shape()));
    check(out_col >= 0 && out_col + count <= Co, op, ": columns [", out_col, ", ", out_col + count,
          ") out of range for out ", shape_str(out.shape()));
    const int64_t Cx = x.dim(2);
    const float* px = x.f32();
    float* po = out.f32();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t l = 0; l < L; ++l)
            std::copy_n(px + (b * L + l) * Cx + col, count, po + (b * Lo + tok + l) * Co + out_col);
}

void CpuBackend::rms_norm_rope_into(const Tensor& x, int64_t col, const Tensor& norm_weight, const Tensor& cos,
                                    const Tensor& sin, float eps, Tensor& out, int64_t tok) {
    check(out.ndim() == 4, "rms_norm_rope_into: out must be [B, Lo, H, Dh], got ", shape_str(out.shape()));
    const int64_t H = out.dim(2), Dh = out.dim(3);
    check_columns(x, col, H * Dh, "rms_norm_rope_into", "x");
    Tensor heads = slice(x, 2, col, H * Dh).reshape({x.dim(0), x.dim(1), H, Dh});
    copy_into(rms_norm_rope(heads, norm_weight, cos, sin, eps).reshape({x.dim(0), x.dim(1), H * Dh}), 0, H * Dh, out,
              tok, 0);
}

void CpuBackend::swiglu_into(const Tensor& x, int64_t col, int64_t m, Tensor& out, int64_t out_col) {
    check_columns(x, col, 2 * m, "swiglu_into", "x");
    check_columns(out, out_col, m, "swiglu_into", "out");
    copy_into(swiglu(slice(x, 2, col, 2 * m)), 0, m, out, 0, out_col);
}

void CpuBackend::attention_into(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out,
                                int64_t out_col) {
    check(q.ndim() == 4, "attention_into: q must be [B, L, H, Dh], got ", shape_str(q.shape()));
    const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), Dh = q.dim(3);
    check_columns(v, v_col, H * Dh, "attention_into", "v");
    check_columns(out, out_col, H * Dh, "attention_into", "out");
    Tensor o = attention(q, k, slice(v, 2, v_col, H * Dh).reshape({B, L, H, Dh}));
    copy_into(o, 0, H * Dh, out, 0, out_col);
}

}  // namespace flux2
