// `flux2 bench`: denoising-step timings of the transformer at real dimensions with deterministic random NVFP4
// weights (or a checkpoint), per precision path and resolution.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <cstdio>
#include <sstream>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/synthetic_pipeline.h"
#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_bench_inputs.h"
#include "models/flux2/flux2_random_weights.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_synthetic.h"
#include "models/transformer_checkpoint.h"

namespace flux2::cli {

namespace {
struct BenchArgs {
    std::string model = "klein-4b", device = "auto", precisions, resolutions = "512,1024", residency, save_pipeline;
    int steps = 5, warmup = 2, text_tokens = 512, lora_rank = 0;
    bool profile = false, no_cuda_graphs = false, small_text_encoder = false;
    uint64_t seed = 0;
    ParallelOptions parallel;
};

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');)
        if (!item.empty()) out.push_back(item);
    return out;
}

// FLOPs of one forward (FLUX2_SPEC.md §7.3): block linears, joint attention, embedders and output layers.
double step_flops(const Flux2Config& c, int64_t Li, int64_t Lt) {
    const double D = static_cast<double>(c.inner_dim()), L = static_cast<double>(Li + Lt);
    const double blocks = static_cast<double>(c.num_layers + c.num_single_layers);
    const double linear = 2.0 * (4.0 * D * D + 3.0 * D * c.mlp_hidden()) * L * blocks;
    const double attention = 4.0 * L * L * D * blocks;
    const double io = 2.0 * (Li * D * c.in_channels + Lt * D * c.joint_attention_dim + Li * D * c.out_channels);
    return linear + attention + io;
}

void run_bench(const BenchArgs& a) {
    if (!a.save_pipeline.empty()) {
        check(a.model == "dev" || a.model == "klein-4b" || a.model == "klein-9b",
              "--save-pipeline needs --model dev, klein-4b or klein-9b");
        log_info("writing a real-size synthetic ", a.model, " pipeline to ", a.save_pipeline);
        write_synthetic_pipeline(a.save_pipeline, real_size_pipeline_spec(a.model, a.seed, a.small_text_encoder));
        std::printf("%s\n", a.save_pipeline.c_str());
        return;
    }
    BackendOptions requested;
    requested.device = a.device;
    const std::string device = resolve_device(requested);
    const bool preset = a.model == "dev" || a.model == "klein-4b" || a.model == "klein-9b";
    std::vector<std::string> precisions = split_list(a.precisions);
    if (precisions.empty())
        precisions = device == "cpu" ? std::vector<std::string>{""} : std::vector<std::string>{"bf16", "fp8"};
    std::printf("%-10s %-6s %-10s %10s %10s %12s %12s  %s\n", "model", "res", "precision", "s/step", "TFLOP/s",
                "peak mem GB", "rel vs first", "linear paths (one step)");
    // The first precision's output per resolution: the others report their relative difference to it (same
    // weights, same inputs), e.g. fp8 against bf16 at full size.
    std::map<int, std::vector<float>> first_outputs;
    for (const std::string& precision : precisions) {
        BackendOptions options;
        options.device = device;
        options.precision = precision;
        options.residency = precision == "fp8" ? a.residency : "";  // residency only concerns the fp8 path
        options.cuda_graphs = !a.no_cuda_graphs;
        auto backend = make_backend(options);
        Flux2Config config;
        std::unique_ptr<WeightSource> weights;
        if (preset) {
            config = Flux2Config::preset(a.model);
            weights = std::make_unique<RandomFlux2Weights>(config, a.seed);
        } else {
            auto ckpt = std::make_unique<TransformerCheckpoint>(TransformerCheckpoint::open(a.model));
            config = Flux2Config::for_checkpoint(*ckpt);
            weights = std::move(ckpt);
        }
        Flux2Transformer model = Flux2Transformer::load(*weights, config, *backend);
        weights.reset();  // the model holds what it needs
        start_parallel(a.parallel, model, options, [&](Backend& rank_backend) {
            std::unique_ptr<WeightSource> rank_weights;
            if (preset) {
                rank_weights = std::make_unique<RandomFlux2Weights>(config, a.seed);
            } else {
                rank_weights = std::make_unique<TransformerCheckpoint>(TransformerCheckpoint::open(a.model));
            }
            return Flux2Transformer::load(*rank_weights, config, rank_backend);
        });
        if (a.lora_rank > 0) {
            auto lora = std::make_shared<const LoraAdapter>(synthetic_lora(config, a.lora_rank, a.seed + 1));
            model.set_loras({ActiveLora{str("synthetic-r", a.lora_rank), lora, 1.0f}});
        }
        for (const std::string& res : split_list(a.resolutions)) {
            const int pixels = std::stoi(res);
            check(pixels % 16 == 0, "resolution ", pixels, " is not a multiple of 16");
            Flux2Inputs in = benchmark_inputs(config, pixels / 16, a.text_tokens, 1);
            // As in a generation: the prompt embeddings are uploaded once, the latents at every step.
            in.encoder_hidden_states = backend->upload(in.encoder_hidden_states);
            // Paths of one step: the first warm-up step always runs op by op (later ones may be replays).
            backend->reset_path_counts();
            std::string paths;
            for (int i = 0; i < a.warmup; ++i) {
                model.forward(in);
                if (i == 0) paths = backend->path_summary();
            }
            std::vector<double> times;
            std::vector<float> output;
            for (int i = 0; i < a.steps; ++i) {
                auto t0 = std::chrono::steady_clock::now();
                Tensor out = model.forward(in);
                times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
                if (i == 0) output = out.to_vector();
            }
            std::string rel = "-";
            if (auto it = first_outputs.find(pixels); it != first_outputs.end()) {
                double num = 0, den = 0;
                for (size_t k = 0; k < output.size(); ++k) {
                    num += (double(output[k]) - it->second[k]) * (double(output[k]) - it->second[k]);
                    den += double(it->second[k]) * it->second[k];
                }
                rel = str(std::sqrt(num / den));
            } else {
                first_outputs[pixels] = std::move(output);
            }
            std::sort(times.begin(), times.end());
            std::string label = precision.empty() ? backend->name() : precision;
            if (!options.residency.empty()) label += "/" + options.residency;
            if (a.parallel.gpus > 1) label += str("x", a.parallel.gpus);
            const double median = times[times.size() / 2];
            const double tflops = step_flops(config, in.img_ids.dim(0), a.text_tokens) / median * 1e-12;
            std::printf("%-10s %-6d %-10s %10.4f %10.1f %12.2f %12s  %s\n",
                        a.model.size() > 10 ? "checkpoint" : a.model.c_str(), pixels,
                        label.c_str(), median, tflops,
                        backend->peak_memory_bytes() / 1e9, rel.c_str(), paths.c_str());
            std::fflush(stdout);
            if (a.profile) {
                // One more step op by op (a replayed graph shows no ops), timed per op on the device.
                model.set_replay(false);
                backend->start_profile();
                model.forward(in);
                std::printf("%s", backend->profile_report().c_str());
                std::fflush(stdout);
                model.set_replay(true);
            }
        }
    }
}
}  // namespace

void register_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "bench",
        "Time denoising steps of the transformer: random NVFP4 weights at real dimensions (dev, klein-4b, klein-9b)\n"
        "or a checkpoint, per precision path and resolution. Prints s/step, TFLOP/s, peak memory, linear paths.");
    auto a = std::make_shared<BenchArgs>();
    cmd->add_option("--model", a->model, "dev, klein-4b, klein-9b, or a checkpoint path")->capture_default_str();
    cmd->add_option("--device", a->device, "auto (a usable GPU, else cpu), cuda, cuda:N or cpu")->capture_default_str();
    cmd->add_option("--precision", a->precisions,
                    "comma list of GPU paths: bf16, fp8 (default bf16,fp8 on cuda, each later one compared with the first; f32 on cpu)");
    cmd->add_option("--residency", a->residency,
                    "fp8 path: keep NVFP4 weights as fp8 (default) or fp4 (4-bit resident, converted per layer)");
    cmd->add_option("--resolutions", a->resolutions, "comma list of square image sizes")->capture_default_str();
    cmd->add_option("--steps", a->steps, "timed steps (median reported)")->capture_default_str();
    cmd->add_option("--warmup", a->warmup, "untimed steps first (at least 1)")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--text-tokens", a->text_tokens, "text sequence length")->capture_default_str();
    cmd->add_option("--seed", a->seed, "seed of the random weights")->capture_default_str();
    cmd->add_option("--lora-rank", a->lora_rank,
                    "attach a random LoRA of this rank to every linear (q/k/v sharing A, as a fused-qkv LoRA) to time "
                    "the low-rank branch; 0: none")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("--profile", a->profile,
                  "after the timed steps, run one step op by op and print the device time per op and GEMM shape");
    cmd->add_flag("--no-cuda-graphs", a->no_cuda_graphs,
                  "time steps op by op instead of replaying the recorded step (CUDA graphs)");
    cmd->add_flag("--small-text-encoder", a->small_text_encoder,
                  "with --save-pipeline: a small stand-in text encoder of the real width for klein too (dev always\n"
                  "gets one); for step and server timing, where prompt encoding does not matter");
    add_parallel_options(cmd, a->parallel);
    cmd->add_option("--save-pipeline", a->save_pipeline,
                    "instead of timing, write a servable pipeline folder with random weights at --model's real size\n"
                    "(transformer NVFP4-mixed, VAE, Qwen3 text encoder; dev's is a smaller stand-in) and exit");
    cmd->callback([a] { run_bench(*a); });
}

}  // namespace flux2::cli
