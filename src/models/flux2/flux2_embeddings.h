#pragma once
// Host-side tables the transformer feeds to the backend: the sinusoidal timestep/guidance projection and the
// 4-axis RoPE cos/sin tables (FLUX2_SPEC.md §1.3 step 2, §1.4).
#include <array>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace flux2 {

// Position ids as the model takes them, [L, 4], from [L, 4] or from the [B, L, 4] that diffusers' Flux2 pipelines
// pass (the same ids repeated per sample); a [B, L, 4] whose samples differ is refused, since one set of RoPE
// tables serves the whole batch. `name` ("img_ids") goes into the messages.
Tensor shared_position_ids(const Tensor& ids, const std::string& name);

// values [B] (already x1000) -> [B, channels] laid out [cos(arg) | sin(arg)], arg = v * exp(-ln(1e4) k / half).
Tensor timestep_projection(const std::vector<float>& values, int64_t channels);

struct RopeTables {
    Tensor cos;  // [L, head_dim]
    Tensor sin;  // [L, head_dim]
};

// ids [L, 4] (t, h, w, l) -> interleaved-pair tables; axis i covers dims [sum(axes[<i]), +axes[i]).
// Angles in float64 like diffusers on CUDA/CPU, stored as float.
RopeTables rope_tables(const Tensor& ids, const std::array<int64_t, 4>& axes_dims, double theta);

}  // namespace flux2
