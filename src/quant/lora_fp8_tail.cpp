#include "quant/lora_fp8_tail.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/float_codecs.h"

namespace flux2 {

bool plan_lora_fp8_tail(const float* b, int64_t rank, int64_t rank_padded, int64_t out, const float* w_scales,
                        LoraFp8Tail& plan, std::string& why) {
    plan = LoraFp8Tail{};
    plan.t_factor.assign(static_cast<size_t>(rank_padded), 0.0f);
    for (int64_t j = 0; j < out; ++j) {
        if (!(w_scales[j] > 0.0f) || !std::isfinite(w_scales[j])) {
            why = str("output channel ", j, " has FP8 scale ", w_scales[j]);
            return false;
        }
    }
    // Threads over the output channels: a dev layer's B holds millions of values, and this runs when adapters
    // are switched. Each range keeps its column maxima, merged under the lock.
    std::mutex merge;
    std::atomic<int64_t> bad{-1};
    parallel_for(out, 256, [&](int64_t j0, int64_t j1) {
        std::vector<float> local(static_cast<size_t>(rank), 0.0f);
        for (int64_t j = j0; j < j1; ++j) {
            const float inv = 1.0f / (448.0f * w_scales[j]);
            for (int64_t r = 0; r < rank; ++r) {
                const float v = std::fabs(b[j * rank + r]) * inv;
                if (!std::isfinite(v)) bad = j * rank + r;
                local[r] = std::max(local[r], v);
            }
        }
        std::lock_guard<std::mutex> lock(merge);
        for (int64_t r = 0; r < rank; ++r) plan.t_factor[r] = std::max(plan.t_factor[r], local[r]);
    });
    if (bad >= 0) {
        why = str("B[", bad / rank, ", ", bad % rank, "] = ", b[bad], " is not finite");
        return false;
    }
    plan.b_codes.assign(static_cast<size_t>(out * rank_padded), 0);
    parallel_for(out, 256, [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) {
            for (int64_t r = 0; r < rank; ++r) {
                if (plan.t_factor[r] == 0.0f) continue;  // an all-zero column of B: the term is zero
                const float v = b[j * rank + r] / (plan.t_factor[r] * w_scales[j]);
                plan.b_codes[j * rank_padded + r] = f32_to_e4m3(v);
            }
        }
    });
    return true;
}

}  // namespace flux2
