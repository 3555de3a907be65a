// CpuBackend: LayerNorm + modulation, RMSNorm, QK-RMSNorm + RoPE, gated residual. Row statistics are
// accumulated in double so the reference is tighter than any fp32 kernel it is compared with.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {

namespace {
// Rows of [B, L, D] against per-sample vectors [B, D].
void check_modulation(const Tensor& x, const Tensor& v, const char* op, const char* what) {
    check(x.ndim() == 3, op, ": expected x [B, L, D], got ", shape_str(x.shape()));
    check(v.shape() == Shape{x.dim(0), x.dim(2)}, op, ": ", what, " must be [B, D] = [", x.dim(0), ", ", x.dim(2),
          "], got ", shape_str(v.shape()));
}
}  // namespace

Tensor CpuBackend::layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) {
    check_modulation(x, shift, "layer_norm_modulate", "shift");
    check_modulation(x, scale, "layer_norm_modulate", "scale");
    const int64_t L = x.dim(1), D = x.dim(2);
    Tensor y = Tensor::zeros(x.shape());
    const float *px = x.f32(), *psh = shift.f32(), *psc = scale.f32();
    float* py = y.f32();
    parallel_for(x.dim(0) * L, 16, [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const float* row = px + r * D;
            const int64_t b = r / L;
            double mean = 0, var = 0;
            for (int64_t i = 0; i < D; ++i) mean += row[i];
            mean /= D;
            for (int64_t i = 0; i < D; ++i) var += (row[i] - mean) * (row[i] - mean);
            var /= D;
            const double inv = 1.0 / std::sqrt(var + eps);
            for (int64_t i = 0; i < D; ++i) {
                float n = static_cast<float>((row[i] - mean) * inv);
                py[r * D + i] = (1.0f + psc[b * D + i]) * n + psh[b * D + i];
            }
        }
    });
    return y;
}

void CpuBackend::gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) {
    check_modulation(x, gate, "gated_residual", "gate");
    check(x.shape() == y.shape(), "gated_residual: x ", shape_str(x.shape()), " and y ", shape_str(y.shape()),
          " differ");
    const int64_t L = x.dim(1), D = x.dim(2);
    float* px = x.f32();
    const float *pg = gate.f32(), *py = y.f32();
    for (int64_t r = 0; r < x.dim(0) * L; ++r) {
        const float* g = pg + (r / L) * D;
        for (int64_t i = 0; i < D; ++i) px[r * D + i] += g[i] * py[r * D + i];
    }
}

Tensor CpuBackend::rms_norm(const Tensor& x, const Tensor& weight, float eps) {
    const int64_t D = x.dim(-1);
    check(weight.numel() == D, "rms_norm: weight has ", weight.numel(), " elements, expected ", D);
    Tensor y = Tensor::zeros(x.shape());
    const float *px = x.f32(), *pw = weight.f32();
    float* py = y.f32();
    parallel_for(x.numel() / D, 16, [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            double ss = 0;
            for (int64_t i = 0; i < D; ++i) ss += double(px[r * D + i]) * px[r * D + i];
            const float inv = static_cast<float>(1.0 / std::sqrt(ss / D + eps));
            for (int64_t i = 0; i < D; ++i) py[r * D + i] = px[r * D + i] * inv * pw[i];
        }
    });
    return y;
}

Tensor CpuBackend::rms_norm_rope(const Tensor& x, const Tensor& norm_weight, const Tensor& cos, const Tensor& sin,
                                 float eps) {
    check(x.ndim() == 4, "rms_norm_rope: expected x [B, L, H, Dh], got ", shape_str(x.shape()));
    const int64_t L = x.dim(1), H = x.dim(2), Dh = x.dim(3);
    check(Dh % 2 == 0, "rms_norm_rope: head dim ", Dh, " is odd");
    check(cos.shape() == Shape{L, Dh} && sin.shape() == Shape{L, Dh}, "rms_norm_rope: cos/sin must be [", L, ", ",
          Dh, "], got ", shape_str(cos.shape()), " / ", shape_str(sin.shape()));
    Tensor normed = rms_norm(x, norm_weight, eps);
    Tensor y = Tensor::zeros(x.shape());
    const float *pn = normed.f32(), *pc = cos.f32(), *ps = sin.f32();
    float* py = y.f32();
    parallel_for(x.dim(0) * L * H, 64, [&](int64_t rb, int64_t re) {
        for (int64_t r = rb; r < re; ++r) {
            const int64_t l = (r / H) % L;
            const float *v = pn + r * Dh, *c = pc + l * Dh, *s = ps + l * Dh;
            float* o = py + r * Dh;
            for (int64_t j = 0; j < Dh; j += 2) {
                o[j] = v[j] * c[j] - v[j + 1] * s[j];
                o[j + 1] = v[j + 1] * c[j + 1] + v[j] * s[j + 1];
            }
        }
    });
    return y;
}

}  // namespace flux2
