// CPU transformer forward timings (fp32, OpenBLAS): the tiny test model and a mid-sized model
// (D = 1024, 2 double + 4 single blocks, 1024 tokens). Weights are synthetic NVFP4-mixed checkpoints.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "backend/backend.h"
#include "models/flux2/flux2_bench_inputs.h"
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

void run(benchmark::State& state, const Flux2Config& c, int64_t grid_side, int64_t text_tokens) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("flux2-bench-" + std::to_string(c.inner_dim()) + ".safetensors");
    write_synthetic_transformer(path.string(), c, 1);
    auto backend = make_backend({});
    TransformerCheckpoint ckpt = TransformerCheckpoint::open(path.string());
    Flux2Transformer model = Flux2Transformer::load(ckpt, c, *backend);
    Flux2Inputs in = benchmark_inputs(c, grid_side, text_tokens, 7);
    const int64_t image_tokens = grid_side * grid_side;
    model.forward(in);  // warm-up: dequantizes every weight once
    for (auto _ : state) benchmark::DoNotOptimize(model.forward(in));
    const double L = static_cast<double>(image_tokens + text_tokens), D = static_cast<double>(c.inner_dim());
    const double blocks = static_cast<double>(c.num_layers + c.num_single_layers);
    const double flops = 2.0 * 13.0 * D * D * L * blocks + 4.0 * L * L * D * blocks;
    state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
    std::filesystem::remove(path);
}

void BM_TransformerTiny(benchmark::State& state) { run(state, tiny_config(), 4, 8); }
void BM_TransformerMid1024(benchmark::State& state) { run(state, mid_config(), 30, 124); }

BENCHMARK(BM_TransformerTiny)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_TransformerMid1024)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace
}  // namespace flux2
