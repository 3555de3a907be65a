// CpuBackend::conv2d: im2col + OpenBLAS SGEMM. The column buffer is built for a band of output rows at a time, so
// a 1024^2 VAE layer needs tens of megabytes of scratch instead of gigabytes; each band's GEMM writes straight into
// its rows of the output plane.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "backend/op_shapes.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {

namespace {
constexpr int64_t kColumnBudget = int64_t{1} << 24;  // floats of im2col scratch (64 MiB)

// out[Cout, n] (row stride ldc) += W[Cout, K] col[K, n]
void gemm_nn_accumulate(const float* w, const float* col, float* out, int64_t cout, int64_t n, int64_t k, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(cout), static_cast<int>(n),
                static_cast<int>(k), 1.0f, w, static_cast<int>(k), col, static_cast<int>(n), 1.0f, out,
                static_cast<int>(ldc));
}
}  // namespace

Tensor CpuBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding) {
    const Conv2dShape s = conv2d_shape(x, weight, bias, stride, padding);
    const int64_t B = s.B, cin = s.cin, H = s.H, W = s.W, cout = s.cout, kh = s.kh, kw = s.kw;
    const int64_t Ho = s.Ho, Wo = s.Wo, P = s.P, K = s.K;

    Tensor y = Tensor::zeros({B, cout, Ho, Wo});
    const float *px = x.f32(), *pw = weight.f32(), *pb = bias.f32();
    float* py = y.f32();
    for (int64_t i = 0; i < B * cout; ++i) std::fill_n(py + i * P, P, pb[i % cout]);

    if (kh == 1 && kw == 1 && stride == 1 && padding == 0) {  // the input plane already is the column matrix
        for (int64_t b = 0; b < B; ++b) gemm_nn_accumulate(pw, px + b * cin * P, py + b * cout * P, cout, P, cin, P);
        return y;
    }
    const int64_t band_rows = std::clamp<int64_t>(kColumnBudget / std::max<int64_t>(K * Wo, 1), 1, Ho);
    std::vector<float> col(static_cast<size_t>(K * band_rows * Wo));
    for (int64_t b = 0; b < B; ++b) {
        const float* xb = px + b * cin * H * W;
        for (int64_t r0 = 0; r0 < Ho; r0 += band_rows) {
            const int64_t rows = std::min(band_rows, Ho - r0), n = rows * Wo;
            parallel_for(K, 8, [&](int64_t k0, int64_t k1) {
                for (int64_t k = k0; k < k1; ++k) {
                    const int64_t ci = k / (kh * kw), ky = (k / kw) % kh, kx = k % kw;
                    const float* plane = xb + ci * H * W;
                    float* dst = col.data() + k * n;
                    for (int64_t r = 0; r < rows; ++r) {
                        const int64_t iy = (r0 + r) * stride - padding + ky;
                        float* out_row = dst + r * Wo;
                        if (iy < 0 || iy >= H) {
                            std::fill_n(out_row, Wo, 0.0f);
                            continue;
                        }
                        const float* in_row = plane + iy * W;
                        for (int64_t c = 0; c < Wo; ++c) {
                            const int64_t ix = c * stride - padding + kx;
                            out_row[c] = (ix >= 0 && ix < W) ? in_row[ix] : 0.0f;
                        }
                    }
                }
            });
            gemm_nn_accumulate(pw, col.data(), py + b * cout * P + r0 * Wo, cout, n, K, P);
        }
    }
    return y;
}

}  // namespace flux2
