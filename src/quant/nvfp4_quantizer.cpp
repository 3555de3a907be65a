#include "quant/nvfp4_quantizer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"

namespace flux2 {

Nvfp4Weight quantize_nvfp4_weight(const float* w, int64_t out, int64_t in) {
    check(in % kNvfp4Block == 0, "NVFP4 needs in_features divisible by 16, got ", in);
    // Rows are independent once the tensor's amax is known: both passes run in parallel (real-size synthetic
    // checkpoints quantize billions of weights).
    std::vector<float> row_amax(out, 0.0f);
    parallel_for(out, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t i = 0; i < in; ++i) row_amax[r] = std::max(row_amax[r], std::fabs(w[r * in + i]));
    });
    const float amax = out > 0 ? *std::max_element(row_amax.begin(), row_amax.end()) : 0.0f;
    Nvfp4Weight q;
    q.weight_scale_2 = amax / (kE4m3Max * kE2m1Max);
    const int64_t blocks = in / kNvfp4Block;
    q.codes.assign(out * in / 2, 0);
    q.scales.assign(out * blocks, 0);
    parallel_for(out, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        for (int64_t b = 0; b < blocks; ++b) {
            const float* x = w + r * in + b * kNvfp4Block;
            float bmax = 0;
            for (int i = 0; i < kNvfp4Block; ++i) bmax = std::max(bmax, std::fabs(x[i]));
            const float raw = q.weight_scale_2 > 0 ? bmax / kE2m1Max / q.weight_scale_2 : 0.0f;
            const uint8_t s = f32_to_e4m3(std::min(raw, kE4m3Max));
            q.scales[r * blocks + b] = s;
            const float t = q.weight_scale_2 * e4m3_to_f32(s);
            for (int i = 0; i < kNvfp4Block; i += 2) {
                auto code = [&](float v) {
                    return t > 0 ? f32_to_e2m1(std::clamp(v / t, -kE2m1Max, kE2m1Max)) : uint8_t{0};
                };
                // Element 2i in the high nibble (BFL / ComfyUI packing).
                q.codes[(r * in + b * kNvfp4Block + i) / 2] = static_cast<uint8_t>(code(x[i]) << 4 | code(x[i + 1]));
            }
        }
    }
    });
    return q;
}

}  // namespace flux2
