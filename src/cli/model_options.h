#pragma once
// The flags that choose a model and how it runs, shared by `generate` and `serve` so that both resolve components
// and pick backends the same way.
#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/flux2/flux2_rank_group.h"
#include "pipeline/flux2_engine.h"
#include "pipeline/model_components.h"
#include "pipeline/vae_tiling.h"

namespace flux2::cli {

struct ModelOptions {
    ComponentArgs components;
    std::string klein_mode = "auto";
    std::vector<int> out_layers;
    std::string device = "auto", precision, activations = "w4a16", residency;
    std::string attention = "auto";               // auto, bf16 or fp8 (BackendOptions::attention)
    std::string fp8_accumulation = "fast";        // fast or precise (BackendOptions::fp8_accumulation)
    std::string text_encoder_precision = "bf16";  // bf16 (as stored), fp8 or fp4
    std::string offload = "auto";                 // none, model, layers or auto (pipeline/offload.h)
    double resident_budget_gb = -1.0;             // --resident-budget; negative: the mode's default
    int stream_e4m3 = 0;                          // --stream-e4m3
    bool no_cuda_graphs = false;
    bool vae_tiling = false;         // --vae-tiling: always tile the VAE (it also tiles by itself above a size)
    std::vector<std::string> loras;  // --lora FILE[:STRENGTH], repeatable
    int threads = 0;

    bool demo() const { return components.model_path.empty() && components.transformer_weights_path.empty(); }
    // Checks the values and applies --threads; the options for make_backend.
    BackendOptions backend_options() const;
    VaeTiling vae_tiling_options() const;
    // A resident pipeline of these flags (`serve`, `eval`).
    EngineOptions engine_options() const;
    WeightPrecision text_encoder_weights() const;
    int64_t resident_budget_bytes() const;  // --resident-budget in bytes; -1 when not given
};

// A --resident-budget of `gb` gigabytes in bytes; -1 (not given) for a negative one.
int64_t resident_budget_bytes(double gb);

void add_model_options(CLI::App* cmd, ModelOptions& o);

// --gpus N --parallel ulysses|tp|cfg (generate, bench, serve): several devices for one image (docs/CUDA.md "Several
// GPUs").
struct ParallelOptions {
    int gpus = 1;
    std::string parallel = "ulysses";
    int tp_size = 2;  // ulysses-tp: tensor-parallel ranks per row of the grid
};
void add_parallel_options(CLI::App* cmd, ParallelOptions& o);
// Checks --gpus / --parallel (start_parallel does too; `serve` calls it before loading anything).
void check_parallel_options(const ParallelOptions& o);
// With --gpus above 1 every rank keeps its weights: --offload none or auto only, and no layer-streaming flags.
void check_offload_for_gpus(const ModelOptions& m, const ParallelOptions& o);
// With --gpus N > 1, makes rank0 (loaded on a backend of `options`) drive N ranks, one thread per device, rank r on
// cuda:r (on the CPU: N CPU ranks with the in-process communicator, for testing); each rank loads with `load`.
void start_parallel(const ParallelOptions& o, Flux2Transformer& rank0, const BackendOptions& options,
                    const RankLoader& load);
// --stream-e4m3 N (--offload layers), shared with `bench`.
void add_stream_e4m3_option(CLI::App* cmd, int& blocks);
// --lora FILE[:STRENGTH] (repeatable), shared with `forward`.
void add_lora_option(CLI::App* cmd, std::vector<std::string>& loras);

}  // namespace flux2::cli
