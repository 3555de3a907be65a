// Host side of switching LoRAs (docs/LORA.md, "Switching adapters"): building every layer's branch of FLUX.2 dev
// from loaded adapters (build_lora_branches: A's rows stacked, strength x alpha / rank folded into B), the work a
// request with other LoRAs pays before any device work. Synthetic adapters as `flux2 bench --lora-rank` makes
// them; layers carry their shapes only (no weights are needed to build branches).
//   build/flux2_bench --benchmark_filter=BuildLoraBranches
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "models/flux2/flux2_config.h"
#include "models/lora/lora_attach.h"
#include "models/lora/lora_fit.h"
#include "models/lora/lora_synthetic.h"

namespace flux2 {
namespace {

void BM_BuildLoraBranches(benchmark::State& state, const std::vector<int64_t>& ranks) {
    const Flux2Config config = Flux2Config::preset("dev");
    std::vector<LinearWeight> layers;
    for (const auto& [module, shape] : flux2_lora_targets(config)) {
        LinearWeight w;
        w.name = module;
        w.out_features = shape.first;
        w.in_features = shape.second;
        layers.push_back(std::move(w));
    }
    std::vector<const LinearWeight*> view;
    for (const LinearWeight& w : layers) view.push_back(&w);
    std::vector<ActiveLora> active;
    for (size_t i = 0; i < ranks.size(); ++i) {
        active.push_back({"synthetic-" + std::to_string(i),
                          std::make_shared<const LoraAdapter>(synthetic_lora(config, ranks[i], 7 + i)), 1.0f});
    }
    int64_t values = 0;
    for (auto _ : state) {
        std::vector<std::shared_ptr<const LoraBranch>> branches = build_lora_branches(view, active);
        values = 0;
        for (const auto& b : branches) values += b ? static_cast<int64_t>(b->a.size() + b->b.size()) : 0;
        benchmark::DoNotOptimize(branches.data());
    }
    state.counters["branch_MB"] = static_cast<double>(values) * sizeof(float) / 1e6;
}
BENCHMARK_CAPTURE(BM_BuildLoraBranches, dev_rank32, std::vector<int64_t>{32})->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_BuildLoraBranches, dev_three_rank16, std::vector<int64_t>{16, 16, 16})
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace flux2
