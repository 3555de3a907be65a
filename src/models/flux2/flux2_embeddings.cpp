#include "models/flux2/flux2_embeddings.h"

#include <cmath>

#include "core/error.h"

namespace flux2 {

Tensor timestep_projection(const std::vector<float>& values, int64_t channels) {
    check(channels % 2 == 0, "timestep projection needs an even channel count, got ", channels);
    const int64_t half = channels / 2;
    const int64_t B = static_cast<int64_t>(values.size());
    Tensor out = Tensor::zeros({B, channels});
    float* po = out.f32();
    // diffusers get_timestep_embedding (flip_sin_to_cos, shift 0) in fp32: exponent scaled, exp, times t.
    const float log_max = std::log(10000.0f);
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t k = 0; k < half; ++k) {
            const float exponent = -log_max * static_cast<float>(k) / static_cast<float>(half);
            const float arg = values[b] * std::exp(exponent);
            po[b * channels + k] = std::cos(arg);
            po[b * channels + half + k] = std::sin(arg);
        }
    }
    return out;
}

RopeTables rope_tables(const Tensor& ids, const std::array<int64_t, 4>& axes_dims, double theta) {
    check(ids.ndim() == 2 && ids.dim(1) == 4, "position ids must be [L, 4], got ", shape_str(ids.shape()));
    int64_t head_dim = 0;
    for (int64_t a : axes_dims) head_dim += a;
    const int64_t L = ids.dim(0);
    RopeTables t{Tensor::zeros({L, head_dim}), Tensor::zeros({L, head_dim})};
    const float* pid = ids.f32();
    float *pc = t.cos.f32(), *ps = t.sin.f32();
    for (int64_t l = 0; l < L; ++l) {
        int64_t offset = 0;
        for (int axis = 0; axis < 4; ++axis) {
            const int64_t dim = axes_dims[axis];
            const double pos = pid[l * 4 + axis];
            for (int64_t j = 0; j < dim / 2; ++j) {
                const double omega = 1.0 / std::pow(theta, static_cast<double>(2 * j) / static_cast<double>(dim));
                const double angle = pos * omega;
                const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
                const int64_t d = l * head_dim + offset + 2 * j;
                pc[d] = pc[d + 1] = c;
                ps[d] = ps[d + 1] = s;
            }
            offset += dim;
        }
    }
    return t;
}

Tensor shared_position_ids(const Tensor& ids, const std::string& name) {
    check(ids.dtype() == DType::F32 && ids.device() == Device::cpu, name, " must be a host F32 tensor");
    if (ids.ndim() == 2) {
        check(ids.dim(1) == 4, name, " must be [L, 4] or [B, L, 4], got ", shape_str(ids.shape()));
        return ids;
    }
    check(ids.ndim() == 3 && ids.dim(2) == 4 && ids.dim(0) > 0, name, " must be [L, 4] or [B, L, 4], got ",
          shape_str(ids.shape()));
    const int64_t B = ids.dim(0), n = ids.dim(1) * 4;
    const float* p = ids.f32();
    for (int64_t b = 1; b < B; ++b) {
        for (int64_t i = 0; i < n; ++i) {
            check(p[b * n + i] == p[i], name, " ", shape_str(ids.shape()), ": sample ", b,
                  " differs from sample 0 at [", b, ", ", i / 4, ", ", i % 4, "] (", p[b * n + i], " vs ", p[i],
                  "); the batch must share its position ids (one RoPE table serves every sample)");
        }
    }
    return Tensor::from_f32({ids.dim(1), 4}, std::vector<float>(p, p + n));
}

}  // namespace flux2
