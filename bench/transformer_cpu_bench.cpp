// CPU transformer forward timings (fp32, OpenBLAS): the tiny test model and a mid-sized model
// (D = 1024, 2 double + 4 single blocks, 1024 tokens). Weights are synthetic NVFP4-mixed checkpoints.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <random>

#include "backend/backend.h"
#include "models/flux2/flux2_synthetic.h"
#include "models/flux2/flux2_transformer.h"
#include "models/transformer_checkpoint.h"

namespace flux2 {
namespace {

Flux2Config tiny_config() {
    Flux2Config c;
    c.num_layers = 2;
    c.num_single_layers = 2;
    c.attention_head_dim = 32;
    c.num_attention_heads = 2;
    c.joint_attention_dim = 96;
    c.axes_dims_rope = {8, 8, 8, 8};
    return c;
}

Flux2Config mid_config() {
    Flux2Config c;
    c.num_layers = 2;
    c.num_single_layers = 4;
    c.attention_head_dim = 128;
    c.num_attention_heads = 8;
    c.joint_attention_dim = 1536;
    return c;
}

Flux2Inputs random_inputs(const Flux2Config& c, int64_t image_tokens, int64_t text_tokens) {
    std::mt19937 gen(7);
    std::normal_distribution<float> n01;
    auto randn = [&](Shape s) {
        Tensor t = Tensor::zeros(s);
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = n01(gen);
        return t;
    };
    Flux2Inputs in;
    in.hidden_states = randn({1, image_tokens, c.in_channels});
    in.encoder_hidden_states = randn({1, text_tokens, c.joint_attention_dim});
    in.timestep = {0.7f};
    if (c.guidance_embeds) in.guidance = std::vector<float>{4.0f};
    const int64_t side = static_cast<int64_t>(std::sqrt(static_cast<double>(image_tokens)));
    in.img_ids = Tensor::zeros({image_tokens, 4});
    for (int64_t i = 0; i < image_tokens; ++i) {
        in.img_ids.f32()[i * 4 + 1] = static_cast<float>(i / side);
        in.img_ids.f32()[i * 4 + 2] = static_cast<float>(i % side);
    }
    in.txt_ids = Tensor::zeros({text_tokens, 4});
    for (int64_t i = 0; i < text_tokens; ++i) in.txt_ids.f32()[i * 4 + 3] = static_cast<float>(i);
    return in;
}

void run(benchmark::State& state, const Flux2Config& c, int64_t image_tokens, int64_t text_tokens) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("flux2-bench-" + std::to_string(c.inner_dim()) + ".safetensors");
    write_synthetic_transformer(path.string(), c, 1);
    auto backend = make_backend({});
    TransformerCheckpoint ckpt = TransformerCheckpoint::open(path.string());
    Flux2Transformer model = Flux2Transformer::load(ckpt, c, *backend);
    Flux2Inputs in = random_inputs(c, image_tokens, text_tokens);
    model.forward(in);  // warm-up: dequantizes every weight once
    for (auto _ : state) benchmark::DoNotOptimize(model.forward(in));
    const double L = static_cast<double>(image_tokens + text_tokens), D = static_cast<double>(c.inner_dim());
    const double blocks = static_cast<double>(c.num_layers + c.num_single_layers);
    const double flops = 2.0 * 13.0 * D * D * L * blocks + 4.0 * L * L * D * blocks;
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    std::filesystem::remove(path);
}

void BM_TransformerTiny(benchmark::State& state) { run(state, tiny_config(), 16, 8); }
void BM_TransformerMid1024(benchmark::State& state) { run(state, mid_config(), 896, 128); }

BENCHMARK(BM_TransformerTiny)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TransformerMid1024)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace
}  // namespace flux2
