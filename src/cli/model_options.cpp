#include "cli/model_options.h"

#include "core/error.h"
#include "core/parallel.h"

namespace flux2::cli {

BackendOptions ModelOptions::backend_options() const {
    text_encoder_weights();  // checked before anything loads
    if (threads > 0) set_num_threads(threads);
    BackendOptions options;
    options.device = device;
    options.precision = precision;
    options.residency = residency;
    options.attention = attention;
    // Only the CUDA fp8 path has the choice; the CPU backend refuses anything but the default, so pass what was
    // asked only when it is not the default.
    if (fp8_accumulation != "fast") options.fp8_accumulation = fp8_accumulation;
    options.cuda_graphs = !no_cuda_graphs;
    check(activations == "w4a16" || activations == "w4a4", "--activations must be w4a16 or w4a4");
    options.nvfp4_activations = activations == "w4a4" ? Nvfp4Activations::w4a4 : Nvfp4Activations::w4a16;
    return options;
}

VaeTiling ModelOptions::vae_tiling_options() const {
    VaeTiling tiling;
    tiling.force = vae_tiling;
    return tiling;
}

EngineOptions ModelOptions::engine_options() const {
    EngineOptions eo;
    eo.components = components;
    eo.klein_mode = klein_mode;
    eo.text_encoder_out_layers = out_layers;
    eo.loras = loras;
    eo.vae_tiling = vae_tiling_options();
    eo.backend = backend_options();
    eo.text_encoder_weights = text_encoder_weights();
    eo.offload = offload;
    eo.resident_budget_bytes = resident_budget_bytes();
    eo.stream_e4m3 = stream_e4m3;
    return eo;
}

int64_t resident_budget_bytes(double gb) { return gb < 0 ? -1 : static_cast<int64_t>(gb * 1e9); }

int64_t ModelOptions::resident_budget_bytes() const { return cli::resident_budget_bytes(resident_budget_gb); }

WeightPrecision ModelOptions::text_encoder_weights() const {
    return parse_weight_precision(text_encoder_precision, "--text-encoder-precision");
}

namespace {
// --attention auto|bf16|fp8|fp8-flux2 (bench takes a list of them instead).
void add_attention_option(CLI::App* cmd, std::string& attention) {
    cmd->add_option("--attention", attention,
                    "GPU joint attention: fp8 (cuDNN's FP8 SDPA on Hopper and newer: Q, K, V, the probabilities and\n"
                    "the output in E4M3 with one scale per tensor; faster, ~3% error per call), bf16, or auto: fp8\n"
                    "with the fp8/fp4 linear paths, bf16 with --precision bf16; fp8-flux2: the same from flux2's own\n"
                    "kernel on H100/H200 (slower than cuDNN's today; for kernel work; docs/CUDA.md)")
        ->check(CLI::IsMember({"auto", "bf16", "fp8", "fp8-flux2"}))
        ->capture_default_str();
}
}  // namespace

void add_model_options(CLI::App* cmd, ModelOptions& o) {
    cmd->add_option("--model-path", o.components.model_path,
                    "diffusers pipeline folder, transformer file/folder, or Hugging Face repo id (local cache)");
    cmd->add_option("--transformer-weights-path", o.components.transformer_weights_path,
                    "transformer weights overriding the model's (e.g. black-forest-labs/FLUX.2-dev-NVFP4; a folder "
                    "with both NVFP4 files uses *-mixed.safetensors)");
    cmd->add_option("--base-model-path", o.components.base_model_path,
                    "where a transformer-only model takes its VAE and text encoder from")
        ->capture_default_str();
    cmd->add_option("--text-encoder", o.components.text_encoder_path, "text encoder folder (with its tokenizer)");
    cmd->add_option("--vae-path", o.components.vae_path, "VAE folder or BFL ae.safetensors");
    cmd->add_option("--klein-mode", o.klein_mode,
                    "auto, distilled or base (auto: is_distilled of the pipeline's model_index.json, else base when "
                    "the transformer's path names klein-base)")
        ->capture_default_str();
    cmd->add_option("--text-encoder-precision", o.text_encoder_precision,
                    "text encoder weights: bf16 (as the file stores them), fp8 (E4M3, one scale per output channel) "
                    "or fp4 (NVFP4), converted at load; a file already in FP8/NVFP4 stays as it is")
        ->capture_default_str();
    cmd->add_option("--text-encoder-out-layers", o.out_layers,
                    "hidden layers stacked (default dev 10 20 30, klein 9 18 27)");
    cmd->add_option("--device", o.device, "auto (a usable GPU, else cpu), cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option(
        "--precision", o.precision,
        "GPU linear path: fp8 (default on Hopper and newer), bf16, or fp4 (Blackwell, untested on hardware)");
    cmd->add_option("--residency", o.residency,
                    "fp8 path: keep NVFP4 weights as fp8 (default) or fp4 (4-bit resident, converted per layer)");
    add_attention_option(cmd, o.attention);
    cmd->add_option("--fp8-accumulation", o.fp8_accumulation,
                    "fp8 path GEMMs (Hopper): fast keeps their partial sums in the tensor cores' own accumulator\n"
                    "(~10% faster GEMMs; at dev's widths the step is as far from the bf16 path as with precise),\n"
                    "precise promotes them to fp32 registers at intervals (docs/CUDA.md)")
        ->check(CLI::IsMember({"fast", "precise"}))
        ->capture_default_str();
    cmd->add_option("--activations", o.activations, "CPU NVFP4 numerics: w4a16 or w4a4")->capture_default_str();
    cmd->add_flag("--no-cuda-graphs", o.no_cuda_graphs,
                  "cuda: run every denoising step op by op instead of replaying the first one as a CUDA graph");
    cmd->add_flag("--vae-tiling", o.vae_tiling,
                  "decode (and encode references) in overlapping 512 px tiles blended linearly, to bound memory; "
                  "automatic above 1536x1536 pixels; images up to 1024x1024 still run whole, where tiles would cost "
                  "more than they save (docs/PIPELINE.md)");
    cmd->add_option("--offload", o.offload,
                    "none: the text encoder and transformer stay on the device once used (fastest); model: each is\n"
                    "there only while it runs (every image uploads them again); layers: their weights stay in\n"
                    "page-locked host memory and each layer is copied in while the one before computes (least\n"
                    "memory, slower steps); auto: none when the weights fit 80% of the device memory available (free,\n"
                    "other processes' use left out), model when each component alone does, else layers\n"
                    "(docs/PIPELINE.md)")
        ->check(CLI::IsMember({"none", "model", "layers", "auto"}))
        ->capture_default_str();
    cmd->add_option("--resident-budget", o.resident_budget_gb,
                    "GB: with --offload layers, whole transformer blocks stay on the device up to this much memory\n"
                    "and only the rest stream (fewer bytes on the bus, faster steps); default 0, or when auto\n"
                    "picks layers, what 80% of the available memory leaves beside ~8 GB of activations (dev 1024² on\n"
                    "a card with 24 GB free: 18 fits, at ~3% slower steps than all resident)")
        ->check(CLI::NonNegativeNumber);
    add_stream_e4m3_option(cmd, o.stream_e4m3);
    cmd->add_option("--threads", o.threads, "CPU threads");
    add_lora_option(cmd, o.loras);
}

void add_stream_e4m3_option(CLI::App* cmd, int& blocks) {
    cmd->add_option("--stream-e4m3", blocks,
                    "N: with --offload layers (fp8 path), N of the streamed blocks (at most every other one, spread\n"
                    "evenly) carry their NVFP4 weights as E4M3 codes made once at load (page-locked host memory):\n"
                    "twice their bytes on the bus, no conversion before each GEMM. Pays where the steps' compute\n"
                    "hides the bus (dev at 1024x1024, --resident-budget 18, PCIe 5: 8 blocks), costs where\n"
                    "the bus already binds (small images, small budgets); default 0 (docs/PIPELINE.md)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
}

void add_lora_option(CLI::App* cmd, std::vector<std::string>& loras) {
    cmd->add_option("--lora", loras,
                    "LoRA FILE[:STRENGTH] (default strength 1), repeatable; diffusers, BFL/ai-toolkit, PEFT or kohya "
                    "keys (docs/LORA.md). Applied beside the base weights, which stay as they are (also NVFP4/FP8)");
}

void add_parallel_options(CLI::App* cmd, ParallelOptions& o) {
    cmd->add_option("--gpus", o.gpus,
                    "devices for one image: ranks 0..N-1 on cuda:0..N-1, one thread each (with --device cpu: N CPU "
                    "ranks, for testing)")
        ->capture_default_str();
    cmd->add_option(
           "--parallel", o.parallel,
           "how --gpus splits the transformer: ulysses (sequence parallel, the latency mode) or tp (tensor\n"
           "parallel, the memory mode: each GPU holds 1/N of the blocks), N dividing the head count;\n"
           "ulysses-tp: both, as rows of --tp-size tensor-parallel GPUs, Ulysses across the rows (e.g. 4 GPUs:\n"
           "2 x 2); or cfg (klein base with guidance > 1: the conditional and unconditional forwards on 2 GPUs)")
        ->capture_default_str();
    cmd->add_option("--tp-size", o.tp_size, "with --parallel ulysses-tp: tensor-parallel GPUs per row")
        ->capture_default_str();
}

void check_parallel_options(const ParallelOptions& o) {
    check(o.gpus >= 1, "--gpus must be at least 1, got ", o.gpus);
    check(o.parallel == "ulysses" || o.parallel == "tp" || o.parallel == "ulysses-tp" || o.parallel == "cfg",
          "--parallel must be ulysses, tp, ulysses-tp or cfg, got '", o.parallel, "'");
    check(o.parallel != "ulysses-tp" || o.gpus == 1 ||
              (o.tp_size >= 2 && o.gpus % o.tp_size == 0 && o.gpus / o.tp_size >= 2),
          "--parallel ulysses-tp lays --gpus ", o.gpus, " out in rows of --tp-size ", o.tp_size,
          " GPUs: it needs --tp-size of at least 2 dividing --gpus into at least 2 rows");
}

void check_offload_for_gpus(const ModelOptions& m, const ParallelOptions& o) {
    if (o.gpus == 1) return;
    check(m.offload == "none" || m.offload == "auto", "--offload ", m.offload, " is for one device, not --gpus ",
          o.gpus);
    check(m.resident_budget_gb < 0 && m.stream_e4m3 == 0,
          "--resident-budget and --stream-e4m3 are for --offload layers on one device; with --gpus ", o.gpus,
          " every rank keeps its weights");
}

void start_parallel(const ParallelOptions& o, Flux2Transformer& rank0, const BackendOptions& options,
                    const RankLoader& load) {
    check_parallel_options(o);
    if (o.gpus == 1) return;
    const bool cpu = rank0.backend().name() == "cpu";
    check(cpu || options.device == "auto" || options.device == "cuda" || options.device == "cuda:0", "--gpus ", o.gpus,
          " puts rank r on cuda:r, so rank 0 is cuda:0: --device must be auto, cuda or cuda:0, ", "got '",
          options.device, "'");
    const Parallelism mode = o.parallel == "ulysses"      ? Parallelism::ulysses
                             : o.parallel == "tp"         ? Parallelism::tensor
                             : o.parallel == "ulysses-tp" ? Parallelism::ulysses_tp
                                                          : Parallelism::cfg;
    start_rank_group(
        rank0, o.gpus, mode,
        [options, cpu](int r) {
            BackendOptions rank_options = options;
            rank_options.device = cpu ? "cpu" : str("cuda:", r);
            return rank_options;
        },
        load, o.tp_size);
}

}  // namespace flux2::cli
