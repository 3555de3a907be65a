#include "models/flux2/flux2_bench_inputs.h"

#include "core/normal_rng.h"

namespace flux2 {

Flux2Inputs benchmark_inputs(const Flux2Config& c, int64_t grid_side, int64_t text_tokens, uint64_t seed) {
    NormalRng rng(seed);
    auto randn = [&](const Shape& shape) {
        Tensor t = Tensor::zeros(shape);
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = rng.normal();
        return t;
    };
    const int64_t image_tokens = grid_side * grid_side;
    Flux2Inputs in;
    in.hidden_states = randn({1, image_tokens, c.in_channels});
    in.encoder_hidden_states = randn({1, text_tokens, c.joint_attention_dim});
    in.timestep = {0.5f};
    if (c.guidance_embeds) in.guidance = std::vector<float>{4.0f};
    in.img_ids = Tensor::zeros({image_tokens, 4});
    for (int64_t i = 0; i < image_tokens; ++i) {
        in.img_ids.f32()[i * 4 + 1] = static_cast<float>(i / grid_side);
        in.img_ids.f32()[i * 4 + 2] = static_cast<float>(i % grid_side);
    }
    in.txt_ids = Tensor::zeros({text_tokens, 4});
    for (int64_t i = 0; i < text_tokens; ++i) in.txt_ids.f32()[i * 4 + 3] = static_cast<float>(i);
    return in;
}

}  // namespace flux2
