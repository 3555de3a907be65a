// `flux2 bench`: denoising-step timings of the transformer at real dimensions with deterministic random NVFP4
// weights (or a checkpoint), per precision path and resolution.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "backend/backend.h"
#include "cli/bench_pipeline.h"
#include "cli/bench_text_encoder.h"
#include "cli/bench_vae.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "cli/relative_difference.h"
#include "cli/synthetic_pipeline.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timing.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_bench_inputs.h"
#include "models/flux2/flux2_random_weights.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_adapter.h"
#include "models/lora/lora_synthetic.h"
#include "models/transformer_checkpoint.h"

namespace flux2::cli {

namespace {
struct BenchArgs {
    std::string model = "klein-4b", device = "auto", precisions, resolutions = "512,1024", residency, save_pipeline;
    std::string pipeline, text_encoder_precision = "bf16", save_outputs, compare_outputs, offload = "auto", vae;
    std::string text_encoder;
    std::string attentions = "auto";
    std::string accumulations;  // --fp8-accumulation: a comma list for the fp8 runs; empty = the default
    std::vector<std::string> lora_ranks;
    int steps = 5, warmup = 2, text_tokens = 512, repeats = 3;
    double resident_budget_gb = -1.0;
    int stream_e4m3 = 0;
    bool steps_given = false;
    bool profile = false, no_cuda_graphs = false, small_text_encoder = false, attention_error = false, cold = false;
    bool host_latents = false;
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

// One --lora-rank set, "32" or "16,16,16": one random LoRA per entry, each on every linear.
std::vector<ActiveLora> synthetic_loras(const BenchArgs& a, const Flux2Config& config, const std::string& ranks) {
    std::vector<ActiveLora> loras;
    for (const std::string& r : split_list(ranks)) {
        const int rank = std::stoi(r);
        check(rank > 0, "--lora-rank: ranks must be positive, got ", r);
        auto lora = std::make_shared<const LoraAdapter>(synthetic_lora(config, rank, a.seed + 1 + loras.size()));
        loras.push_back(ActiveLora{str("synthetic-r", rank, "-", loras.size()), lora, 1.0f});
    }
    return loras;
}

struct StepTimes {
    double median = 0.0;
    std::vector<float> output;                              // of the first timed step
    std::string paths;                                      // linear paths of the first warm-up step
    std::vector<Backend::AttentionError> attention_errors;  // --attention-error: the first warm-up step's calls
    std::string device;  // the device's clock, power and energy over the timed steps; empty on the CPU
};

StepTimes time_steps(Flux2Transformer& model, Backend& backend, const Flux2Inputs& in, const BenchArgs& a) {
    StepTimes t;
    // Paths of one step: the first warm-up step always runs op by op (later ones may be replays).
    backend.reset_path_counts();
    for (int i = 0; i < a.warmup; ++i) {
        model.forward(in);
        if (i == 0) {
            t.paths = backend.path_summary();
            t.attention_errors = backend.attention_errors();
        }
    }
    // A step as the pipeline runs it: with the latents on the device, the forward, the Euler update and the wait
    // for both (into a state of its own, so that every step sees the same inputs); from the host, as a host-driven
    // sampler runs it: the upload of the latents, the forward and the download of the velocity.
    const bool on_device = in.hidden_states.device() != Device::cpu;
    Tensor state = on_device ? backend.upload_state(Tensor::zeros(in.hidden_states.shape())) : Tensor();
    std::vector<double> times;
    // Under its power limit a GPU runs a step below its top clock: the clock and energy make rows comparable across
    // cards (docs/PERFORMANCE.md).
    std::string why_not;
    std::unique_ptr<ActivityMonitor> monitor = backend.monitor_activity(why_not);
    for (int i = 0; i < a.steps; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        Tensor out = model.forward(in);
        if (on_device) {
            backend.euler_update(state, out, nullptr, 1.0f, -0.02f);
            backend.synchronize();
        }
        times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (i == 0) t.output = (on_device ? backend.download(out) : out).to_vector();
    }
    t.device = activity_line(monitor.get(), why_not, a.steps, "step");
    (void)backend.attention_errors();  // the later steps' checks: the first step's are reported
    std::sort(times.begin(), times.end());
    t.median = times[times.size() / 2];
    return t;
}

// What a request that changes LoRAs pays: detaching and attaching them again, each followed by the first step
// (which uploads the branches and records the step anew), next to reading the same adapters from files.
void time_lora_switch(Flux2Transformer& model, const Flux2Inputs& in, const std::vector<ActiveLora>& loras,
                      double median_step) {
    auto t0 = std::chrono::steady_clock::now();
    model.set_loras({});
    model.forward(in);
    const double detach = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    model.set_loras(loras);  // the branches built on the host; the device's share comes with the first step
    const double build = seconds_since(t0);
    model.forward(in);
    const double attach = seconds_since(t0);
    // The same adapters as diffusers files (page-cached, as a server re-reading an adapter would find them).
    const std::filesystem::path dir = std::filesystem::temp_directory_path() / "flux2-bench-lora";
    std::filesystem::create_directories(dir);
    double read = 0.0, bytes = 0.0;
    for (size_t i = 0; i < loras.size(); ++i) {
        const std::string path = (dir / str("lora", i, ".safetensors")).string();
        write_lora_diffusers(*loras[i].adapter, path);
        bytes += static_cast<double>(std::filesystem::file_size(path));
        t0 = std::chrono::steady_clock::now();
        (void)read_lora(path);
        read += seconds_since(t0);
    }
    std::filesystem::remove_all(dir);
    std::printf(
        "lora switch: detach + first step %.3f s, attach + first step %.3f s (building the branches %.3f s; the "
        "median step: %.4f s, so %.3f s more); reading the adapter file(s) (%.0f MB, diffusers layout): %.3f s\n",
        detach, attach, build, median_step, attach - median_step, bytes / 1e6, read);
    std::fflush(stdout);
}

// --attention-error: the first step's FP8 attention calls against BF16 attention on the same inputs, per call
// (= per block) and summarized.
void print_attention_errors(const std::vector<Backend::AttentionError>& errors) {
    if (errors.empty()) {
        std::printf("attention error: no FP8 attention call in this run\n");
        return;
    }
    std::vector<double> rel;
    for (size_t i = 0; i < errors.size(); ++i) {
        std::printf("attention call %zu %s: FP8 vs BF16 relative L2 %g\n", i, errors[i].shape.c_str(),
                    errors[i].relative);
        rel.push_back(errors[i].relative);
    }
    std::sort(rel.begin(), rel.end());
    std::printf("attention error over %zu calls: min %.4g, median %.4g, max %.4g\n", rel.size(), rel.front(),
                rel[rel.size() / 2], rel.back());
}

void run_bench(const BenchArgs& a) {
    if (!a.save_pipeline.empty()) {
        const bool tiny = a.model == "tiny" || a.model == "tiny-dev";
        check(tiny || a.model == "dev" || a.model == "klein-4b" || a.model == "klein-9b",
              "--save-pipeline needs --model dev, klein-4b, klein-9b, tiny or tiny-dev, got ", a.model);
        log_info("writing a ", tiny ? "" : "real-size ", "synthetic ", a.model, " pipeline to ", a.save_pipeline);
        write_synthetic_pipeline(a.save_pipeline, a.model == "tiny" ? tiny_pipeline_spec()
                                                  : a.model == "tiny-dev"
                                                      ? tiny_dev_pipeline_spec()
                                                      : real_size_pipeline_spec(a.model, a.seed, a.small_text_encoder));
        std::printf("%s\n", a.save_pipeline.c_str());
        return;
    }
    check(!a.cold || !a.pipeline.empty(),
          "--cold times loading a --pipeline folder from the disk; give --pipeline DIR");
    BackendOptions requested;
    requested.device = a.device;
    const std::string device = resolve_device(requested);
    const bool preset = a.model == "dev" || a.model == "klein-4b" || a.model == "klein-9b";
    std::vector<std::string> precisions = split_list(a.precisions);
    if (precisions.empty() && (!a.pipeline.empty() || !a.text_encoder.empty()))
        precisions = {""};  // the device's default path
    if (precisions.empty())
        precisions = device == "cpu" ? std::vector<std::string>{""} : std::vector<std::string>{"bf16", "fp8"};
    const std::vector<std::string> attentions = split_list(a.attentions);
    check(!attentions.empty(), "--attention needs at least one of auto, bf16, fp8, fp8-flux2");
    for (const std::string& at : attentions)
        check(at == "auto" || at == "bf16" || at == "fp8" || at == "fp8-flux2",
              "--attention: expected auto, bf16, fp8 or fp8-flux2, got '", at, "'");
    std::vector<std::string> accumulations = split_list(a.accumulations);
    for (const std::string& acc : accumulations)
        check(acc == "fast" || acc == "precise", "--fp8-accumulation: expected fast or precise, got '", acc, "'");
    if (accumulations.empty()) accumulations = {""};
    if (!a.text_encoder.empty()) {
        TextEncoderBench b;
        b.preset = a.text_encoder;
        b.formats = split_list(a.text_encoder_precision);
        b.backend.device = device;
        check(precisions.size() <= 1 || device == "cpu", "--text-encoder times one linear path: give one --precision");
        if (!precisions.empty()) b.backend.precision = precisions[0];
        check(accumulations.size() == 1, "--text-encoder takes one --fp8-accumulation");
        if (b.backend.precision != "bf16" && device != "cpu") b.backend.fp8_accumulation = accumulations.front();
        b.tokens = a.text_tokens;
        b.repeats = a.repeats;
        b.seed = a.seed;
        b.profile = a.profile;
        run_text_encoder_bench(b);
        return;
    }
    if (!a.vae.empty()) {
        VaeBench b;
        b.vae = a.vae;
        b.backend.device = device;
        b.backend.cuda_graphs = !a.no_cuda_graphs;
        for (const std::string& r : split_list(a.resolutions)) b.resolutions.push_back(std::stoi(r));
        b.repeats = a.repeats;
        b.seed = a.seed;
        run_vae_bench(b);
        return;
    }
    if (!a.pipeline.empty()) {
        check(accumulations.size() == 1, "--pipeline takes one --fp8-accumulation");
        check(a.lora_ranks.empty() && !a.profile && a.parallel.gpus == 1 && !a.attention_error,
              "--pipeline times the whole pipeline on one device: --lora-rank, --profile, --attention-error and ",
              "--gpus are for the transformer step alone");
        PipelineBench b;
        b.folder = a.pipeline;
        for (const std::string& precision : precisions)
            for (const std::string& attention : attentions) {
                BackendOptions options;
                options.device = device;
                options.precision = precision;
                options.residency = precision != "bf16" ? a.residency : "";
                options.attention = attention;
                options.fp8_accumulation = precision != "bf16" ? accumulations.front() : "";
                options.cuda_graphs = !a.no_cuda_graphs;
                b.paths.push_back(options);
            }
        for (const std::string& r : split_list(a.resolutions)) b.resolutions.push_back(std::stoi(r));
        b.steps = a.steps_given ? a.steps : 0;
        b.repeats = a.repeats;
        b.seed = a.seed;
        b.text_encoder_weights = parse_weight_precision(a.text_encoder_precision, "--text-encoder-precision");
        b.offload = a.offload;
        b.resident_budget_bytes = resident_budget_bytes(a.resident_budget_gb);
        b.stream_e4m3 = a.stream_e4m3;
        b.cold = a.cold;
        run_pipeline_bench(b);
        return;
    }
    // "held GB": device memory in use between steps (weights, inputs), of rank 0 with --gpus.
    std::printf("%-10s %-6s %-16s %10s %10s %12s %8s %12s  %s\n", "model", "res", "precision", "s/step", "TFLOP/s",
                "peak mem GB", "held GB", "rel vs first", "linear paths (one step)");
    // The first precision's output per resolution: the others report their relative difference to it (same
    // weights, same inputs), e.g. fp8 against bf16 at full size.
    std::map<std::pair<int, size_t>, std::vector<float>> first_outputs;  // by resolution and LoRA set
    // Across runs (one GPU against several): each output under "<precision>@<res>#<set>".
    std::shared_ptr<SafetensorsFile> reference;
    if (!a.compare_outputs.empty()) reference = SafetensorsFile::open(a.compare_outputs);
    SafetensorsWriter saved;
    struct Run {
        std::string precision, attention, accumulation;
    };
    std::vector<Run> runs;  // precision-major; the accumulation modes only for the fp8 path's GEMMs
    for (const std::string& precision : precisions)
        for (const std::string& attention : attentions)
            for (const std::string& accumulation : accumulations) {
                const bool fp8 = precision != "bf16";  // the CPU refuses an explicit mode by name
                if (!fp8 && accumulation != accumulations.front()) continue;
                runs.push_back({precision, attention, fp8 ? accumulation : ""});
            }
    for (const auto& [precision, attention, accumulation] : runs) {
        BackendOptions options;
        options.device = device;
        options.precision = precision;
        options.residency = precision == "fp8" ? a.residency : "";  // residency only concerns the fp8 path
        options.attention = attention;
        options.fp8_accumulation = accumulation;
        // The BF16 reference attention and the error sums run beside each FP8 call: op by op, not recorded.
        options.check_attention = a.attention_error;
        options.cuda_graphs = !a.no_cuda_graphs && !a.attention_error;
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
        check(a.parallel.gpus == 1 || a.offload != "layers", "--offload layers is for one device, not --gpus ",
              a.parallel.gpus);
        check(a.stream_e4m3 == 0 || a.offload == "layers", "--stream-e4m3 is for --offload layers");
        if (a.offload == "layers")
            log_layer_stream("transformer",
                             model.stream_block_weights(
                                 {std::max<int64_t>(0, resident_budget_bytes(a.resident_budget_gb)), a.stream_e4m3}));
        check(a.parallel.gpus == 1 || a.parallel.parallel != "cfg",
              "bench times one forward; --parallel cfg splits the two forwards of a CFG step (use generate or serve)");
        start_parallel(a.parallel, model, options, [&](Backend& rank_backend) {
            std::unique_ptr<WeightSource> rank_weights;
            if (preset) {
                rank_weights = std::make_unique<RandomFlux2Weights>(config, a.seed);
            } else {
                rank_weights = std::make_unique<TransformerCheckpoint>(TransformerCheckpoint::open(a.model));
            }
            return Flux2Transformer::load(*rank_weights, config, rank_backend);
        });
        // Without LoRA first, then each --lora-rank set on the same weights and inputs.
        std::vector<std::vector<ActiveLora>> lora_sets{{}};
        for (const std::string& ranks : a.lora_ranks) lora_sets.push_back(synthetic_loras(a, config, ranks));
        for (const std::string& res : split_list(a.resolutions)) {
            const int pixels = std::stoi(res);
            check(pixels % 16 == 0, "resolution ", pixels, " is not a multiple of 16");
            Flux2Inputs host_in = benchmark_inputs(config, pixels / 16, a.text_tokens, 1);
            // As in a generation: the prompt embeddings are uploaded once, the latents stay on the device.
            host_in.encoder_hidden_states = backend->upload(host_in.encoder_hidden_states);
            Flux2Inputs in = host_in;
            in.hidden_states = backend->upload_state(host_in.hidden_states);
            for (size_t row = 0; row < lora_sets.size() * (a.host_latents ? 2 : 1); ++row) {
                // --host-latents: each set's step a second time from the host, in this process (same GEMM plans,
                // same recorded step), its output compared with the first.
                const size_t set = a.host_latents ? row / 2 : row;
                const bool from_host = a.host_latents && row % 2 == 1;
                const std::vector<ActiveLora>& loras = lora_sets[set];
                if (lora_sets.size() > 1 && !from_host) model.set_loras(loras);
                StepTimes t = time_steps(model, *backend, from_host ? host_in : in, a);
                if (from_host) t.paths = "the step above, its latents from the host";
                std::string rel = "-";
                const std::string name = str(precision.empty() ? "default" : precision, attention_label(attention),
                                             accumulation.empty() ? "" : "/" + accumulation, "@", pixels, "#", set);
                if (!a.save_outputs.empty() && !from_host)
                    saved.add_f32(name, {static_cast<int64_t>(t.output.size())}, t.output.data());
                const auto key = std::make_pair(pixels, set);
                if (reference && !from_host) {
                    const TensorInfo* want = reference->find(name);
                    check(want != nullptr, "--compare-outputs: ", a.compare_outputs, " has no output ", name,
                          " (written by --save-outputs with the same --precision, --resolutions, --lora-rank)");
                    rel = str(relative_difference(t.output, read_f32(*want)));
                } else if (auto it = first_outputs.find(key); it != first_outputs.end()) {
                    rel = str(relative_difference(t.output, it->second));
                } else {
                    first_outputs[key] = std::move(t.output);
                }
                std::string label = precision.empty() ? backend->name() : precision;
                if (!options.residency.empty()) label += "/" + options.residency;
                label += attention_label(attention);
                if (!accumulation.empty()) label += "/" + accumulation;
                if (a.offload == "layers") label += "/layers";
                if (from_host) label += "/host";
                if (a.parallel.gpus > 1) label += str("x", a.parallel.gpus);
                if (set > 0) label += "+lora" + a.lora_ranks[set - 1];
                const double tflops = step_flops(config, in.img_ids.dim(0), a.text_tokens) / t.median * 1e-12;
                std::printf("%-10s %-6d %-16s %10.4f %10.1f %12.2f %8.2f %12s  %s\n",
                            a.model.size() > 10 ? "checkpoint" : a.model.c_str(), pixels, label.c_str(), t.median,
                            tflops, backend->peak_memory_bytes() / 1e9, backend->memory_in_use_bytes() / 1e9,
                            rel.c_str(), t.paths.c_str());
                if (!t.device.empty()) std::printf("  device over the %d timed steps: %s\n", a.steps, t.device.c_str());
                std::fflush(stdout);
                if (from_host) continue;
                if (a.attention_error) print_attention_errors(t.attention_errors);
                std::fflush(stdout);
                if (!loras.empty()) time_lora_switch(model, in, loras, t.median);
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
    if (!a.save_outputs.empty()) saved.write(a.save_outputs);
}
}  // namespace

void register_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "bench",
        "Time denoising steps of the transformer: random NVFP4 weights at real dimensions (dev, klein-4b, klein-9b)\n"
        "or a checkpoint, per precision path and resolution. Prints s/step, TFLOP/s, peak memory, linear paths,\n"
        "and on a GPU its SM clock, power and energy over the timed steps (a GPU at its power limit lowers its clock,\n"
        "so compare rows by both).");
    auto a = std::make_shared<BenchArgs>();
    cmd->add_option("--model", a->model, "dev, klein-4b, klein-9b, or a checkpoint path")->capture_default_str();
    cmd->add_option("--device", a->device, "auto (a usable GPU, else cpu), cuda, cuda:N or cpu")->capture_default_str();
    cmd->add_option("--precision", a->precisions,
                    "comma list of GPU paths: bf16, fp8 (default bf16,fp8 on cuda, each later one compared with the "
                    "first; f32 on cpu)");
    cmd->add_option("--residency", a->residency,
                    "fp8 path: keep NVFP4 weights as fp8 (default) or fp4 (4-bit resident, converted per layer)");
    cmd->add_option("--attention", a->attentions,
                    "comma list of attention paths timed with each --precision: auto (fp8 with the fp8 linears, bf16\n"
                    "with bf16), bf16, fp8 (cuDNN's FP8 SDPA), fp8-flux2 (flux2's own FP8 kernel on H100/H200); an\n"
                    "explicit one shows in the precision column")
        ->capture_default_str();
    cmd->add_option("--fp8-accumulation", a->accumulations,
                    "comma list for the fp8 runs: fast (the default: partial sums stay in the tensor cores'\n"
                    "accumulator) and/or precise (promoted to fp32 registers at intervals); an explicit one shows in\n"
                    "the precision column");
    cmd->add_flag("--attention-error", a->attention_error,
                  "also run every FP8 attention call in BF16 and print each call's relative L2 difference (the\n"
                  "first step's: one line per block) and their min/median/max; steps then run op by op");
    cmd->add_option("--resolutions", a->resolutions, "comma list of square image sizes")->capture_default_str();
    auto* steps = cmd->add_option("--steps", a->steps,
                                  "timed steps (median reported); with --pipeline, denoising steps per image (default: "
                                  "the model's)");
    steps->capture_default_str();
    cmd->add_option("--warmup", a->warmup, "untimed steps first (at least 1)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->add_option("--text-tokens", a->text_tokens, "text sequence length")->capture_default_str();
    cmd->add_option("--seed", a->seed, "seed of the random weights")->capture_default_str();
    cmd->add_option(
        "--lora-rank", a->lora_ranks,
        "attach a random LoRA of this rank to every linear (q/k/v sharing A, as a fused-qkv LoRA) to time "
        "the low-rank branch;\na comma list attaches several (16,16,16: three rank-16 LoRAs). Repeatable: each set "
        "is timed after the step\nwithout LoRA on the same weights, and so is switching it off and on "
        "against reading it from files");
    cmd->add_flag(
        "--profile", a->profile,
        "after the timed steps (or --text-encoder's encodes), run one more op by op and print the device\ntime "
        "per op and GEMM shape");
    cmd->add_flag("--host-latents", a->host_latents,
                  "after each row, time the same step as a host-driven sampler runs it (upload the latents,\n"
                  "download the velocity) in a row of its own; the rows time the latents on the device, as\ngenerate "
                  "and serve keep them, with the Euler update");
    cmd->add_flag("--no-cuda-graphs", a->no_cuda_graphs,
                  "time steps op by op instead of replaying the recorded step (CUDA graphs)");
    cmd->add_flag("--small-text-encoder", a->small_text_encoder,
                  "with --save-pipeline: a small Qwen3-style stand-in text encoder of the real width (~1.7B\n"
                  "parameters for dev); for step and server timing, where prompt encoding does not matter and the\n"
                  "folder is written faster");
    add_parallel_options(cmd, a->parallel);
    cmd->add_option("--save-outputs", a->save_outputs,
                    "write each timed output (per precision, resolution, LoRA set) to this safetensors file");
    cmd->add_option("--compare-outputs", a->compare_outputs,
                    "report the relative difference to the outputs of an earlier --save-outputs run (e.g. one GPU\n"
                    "against --gpus 2, same --seed) in the 'rel vs first' column instead");
    cmd->add_option("--save-pipeline", a->save_pipeline,
                    "instead of timing, write a servable pipeline folder with random weights at --model's real size\n"
                    "(transformer NVFP4-mixed, VAE, text encoder: Qwen3 for klein, Mistral-Small's in NVFP4 for dev)\n"
                    "and exit; --model tiny / tiny-dev: a tiny klein / dev one (D 256, 4 heads) for quick smoke runs\n"
                    "on a CPU (their pictures are noise)");
    cmd->add_option("--pipeline", a->pipeline,
                    "time the whole pipeline of this folder instead (a real one, or one written by --save-pipeline):\n"
                    "loading, then per resolution one untimed image and --repeat timed ones: prompt encoding,\n"
                    "denoising (and per step), VAE decode, the whole request, peak memory");
    cmd->add_flag("--cold", a->cold,
                  "with --pipeline: first drop the folder's files from the page cache (fdatasync + posix_fadvise;\n"
                  "no root needed, nothing on tmpfs) and time a load from the disk, printed as 'cold load' with how\n"
                  "much was still cached; the table's load is then the one from the page cache");
    cmd->add_option("--text-encoder-precision", a->text_encoder_precision,
                    "with --pipeline: the text encoder's weights, bf16 (as stored), fp8 or fp4 (as for generate);\n"
                    "with --text-encoder: a comma list of them")
        ->capture_default_str();
    cmd->add_option("--offload", a->offload,
                    "with --pipeline: none, model, layers or auto, as for serve; for the transformer step alone,\n"
                    "layers streams the blocks' weights through the device (model and none change nothing there)")
        ->check(CLI::IsMember({"none", "model", "layers", "auto"}))
        ->capture_default_str();
    cmd->add_option("--resident-budget", a->resident_budget_gb,
                    "GB: with --offload layers, whole blocks stay resident up to this much device memory (as for "
                    "generate)")
        ->check(CLI::NonNegativeNumber);
    add_stream_e4m3_option(cmd, a->stream_e4m3);
    cmd->add_option("--vae", a->vae,
                    "time the VAE decode alone instead, whole and in 512 px tiles, per resolution: a VAE folder or\n"
                    "ae.safetensors, or 'random' (the FLUX.2 VAE with random weights); prints time, peak memory and\n"
                    "the tiled image's relative difference to the whole one");
    cmd->add_option("--text-encoder", a->text_encoder,
                    "time prompt encoding alone instead: mistral-small-3 (dev), qwen3-4b or qwen3-8b (klein) at\n"
                    "real size with random weights in memory, per --text-encoder-precision (a comma list of bf16,\n"
                    "fp8, fp4: the linears as such a file stores them), one prompt of --text-tokens tokens")
        ->check(CLI::IsMember({"mistral-small-3", "qwen3-4b", "qwen3-8b"}));
    cmd->add_option("--repeat", a->repeats,
                    "with --pipeline / --vae / --text-encoder: timed runs per resolution or format (medians "
                    "reported)")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    cmd->callback([a, steps] {
        a->steps_given = steps->count() > 0;
        run_bench(*a);
    });
}

}  // namespace flux2::cli
