// CpuBackend: the VAE's non-convolution ops (GroupNorm, nearest upsampling, padding, bias, transposes).
// GroupNorm statistics are accumulated in double, like the transformer's norms.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/op_shapes.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {

Tensor CpuBackend::pad2d(const Tensor& x, int left, int right, int top, int bottom) {
    const Shape shape = pad2d_shape(x, left, right, top, bottom);
    const int64_t H = x.dim(-2), W = x.dim(-1), Ho = shape[shape.size() - 2], Wo = shape.back();
    Tensor y = Tensor::zeros(shape);
    const float* px = x.f32();
    float* py = y.f32();
    parallel_for(x.numel() / std::max<int64_t>(H * W, 1), 4, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
            for (int64_t r = 0; r < H; ++r)
                std::memcpy(py + (p * Ho + r + top) * Wo + left, px + (p * H + r) * W, W * sizeof(float));
    });
    return y;
}

Tensor CpuBackend::group_norm(const Tensor& x, int num_groups, const Tensor& weight, const Tensor& bias, float eps,
                              bool silu) {
    check(x.ndim() >= 2, "group_norm: expected [B, C, ...], got ", shape_str(x.shape()));
    const int64_t B = x.dim(0), C = x.dim(1), S = x.numel() / std::max<int64_t>(B * C, 1);
    check(num_groups > 0 && C % num_groups == 0, "group_norm: ", C, " channels do not split into ", num_groups,
          " groups");
    check(weight.numel() == C && bias.numel() == C, "group_norm: weight / bias have ", weight.numel(), " / ",
          bias.numel(), " elements, expected ", C);
    const int64_t cg = C / num_groups, n = cg * S;
    Tensor y = Tensor::zeros(x.shape());
    const float *px = x.f32(), *pw = weight.f32(), *pb = bias.f32();
    float* py = y.f32();
    parallel_for(B * num_groups, 1, [&](int64_t g0, int64_t g1) {
        for (int64_t g = g0; g < g1; ++g) {
            const int64_t offset = g * n;  // a group's channels are contiguous in NCHW
            double mean = 0, var = 0;
            for (int64_t i = 0; i < n; ++i) mean += px[offset + i];
            mean /= static_cast<double>(n);
            for (int64_t i = 0; i < n; ++i) var += (px[offset + i] - mean) * (px[offset + i] - mean);
            var /= static_cast<double>(n);
            const double inv = 1.0 / std::sqrt(var + eps);
            for (int64_t cl = 0; cl < cg; ++cl) {
                const int64_t c = (g % num_groups) * cg + cl;
                const float* src = px + offset + cl * S;
                float* dst = py + offset + cl * S;
                for (int64_t i = 0; i < S; ++i) {
                    const float v = static_cast<float>((src[i] - mean) * inv) * pw[c] + pb[c];
                    dst[i] = silu ? v / (1.0f + std::exp(-v)) : v;
                }
            }
        }
    });
    return y;
}

Tensor CpuBackend::upsample_nearest2x(const Tensor& x) {
    check(x.ndim() == 4, "upsample_nearest2x: expected [B, C, H, W], got ", shape_str(x.shape()));
    const int64_t H = x.dim(2), W = x.dim(3);
    Tensor y = Tensor::zeros({x.dim(0), x.dim(1), 2 * H, 2 * W});
    const float* px = x.f32();
    float* py = y.f32();
    parallel_for(x.dim(0) * x.dim(1) * H, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* src = px + r * W;
            float* dst = py + 2 * r * 2 * W;  // output rows 2r and 2r + 1 of the same plane
            for (int64_t c = 0; c < W; ++c) dst[2 * c] = dst[2 * c + 1] = src[c];
            std::memcpy(dst + 2 * W, dst, 2 * W * sizeof(float));
        }
    });
    return y;
}

Tensor CpuBackend::add_bias(const Tensor& x, const Tensor& bias) {
    const int64_t N = x.ndim() ? x.dim(-1) : 0;
    check(N > 0 && bias.numel() == N, "add_bias: bias of ", bias.numel(), " elements for ", shape_str(x.shape()));
    Tensor y = x.clone();
    float* py = y.f32();
    const float* pb = bias.f32();
    parallel_for(x.numel() / N, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t i = 0; i < N; ++i) py[r * N + i] += pb[i];
    });
    return y;
}

Tensor CpuBackend::transpose_last2(const Tensor& x) {
    check(x.ndim() >= 2, "transpose_last2: expected at least 2 dims, got ", shape_str(x.shape()));
    const int64_t M = x.dim(-2), N = x.dim(-1), outer = x.numel() / std::max<int64_t>(M * N, 1);
    Shape shape = x.shape();
    std::swap(shape[shape.size() - 2], shape.back());
    Tensor y = Tensor::zeros(shape);
    const float* px = x.f32();
    float* py = y.f32();
    constexpr int64_t kTile = 32;  // cache-friendly blocks of the source
    const int64_t row_tiles = (M + kTile - 1) / kTile;
    parallel_for(outer * row_tiles, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t o = t / row_tiles, i0 = (t % row_tiles) * kTile, i1 = std::min(M, i0 + kTile);
            const float* src = px + o * M * N;
            float* dst = py + o * M * N;
            for (int64_t j0 = 0; j0 < N; j0 += kTile)
                for (int64_t i = i0; i < i1; ++i)
                    for (int64_t j = j0; j < std::min(N, j0 + kTile); ++j) dst[j * M + i] = src[i * N + j];
        }
    });
    return y;
}

}  // namespace flux2
