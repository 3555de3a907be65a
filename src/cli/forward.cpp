// `flux2 forward`: one transformer forward on tensors from a safetensors file (a debugging entry point).
#include <chrono>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_embeddings.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_registry.h"

namespace flux2::cli {

namespace {
struct ForwardArgs {
    std::string model, inputs, output, activations = "w4a16", device = "auto";
    std::vector<std::string> loras;
    int threads = 0;
};

const TensorInfo& require(const SafetensorsFile& f, const std::string& key, const std::string& expected) {
    const TensorInfo* t = f.find(key);
    check(t != nullptr, f.path(), ": missing input '", key, "' (expected ", expected, ")");
    return *t;
}

void run_forward(const ForwardArgs& a) {
    if (a.threads > 0) set_num_threads(a.threads);
    BackendOptions options;
    options.device = a.device;
    check(a.activations == "w4a16" || a.activations == "w4a4", "--activations must be w4a16 or w4a4, got '",
          a.activations, "'");
    options.nvfp4_activations = a.activations == "w4a4" ? Nvfp4Activations::w4a4 : Nvfp4Activations::w4a16;
    auto backend = make_backend(options);
    Flux2Transformer model = Flux2Transformer::load(a.model, *backend);
    LoraRegistry loras;
    if (!a.loras.empty()) loras.set_active(model, loras.load_specs(a.loras));
    const Flux2Config& c = model.config();

    auto in_file = SafetensorsFile::open(a.inputs);
    Flux2Inputs in;
    in.hidden_states = load_f32(require(*in_file, "hidden_states", str("[B, Li, ", c.in_channels, "]")));
    in.encoder_hidden_states =
        load_f32(require(*in_file, "encoder_hidden_states", str("[B, Lt, ", c.joint_attention_dim, "]")));
    in.timestep = read_f32(require(*in_file, "timestep", "[B] sigma in [0, 1]"));
    if (const TensorInfo* g = in_file->find("guidance"); g && c.guidance_embeds) {
        in.guidance = read_f32(*g);
    } else if (g) {
        // diffusers' klein transformer takes the argument and drops it; so do we, but say so.
        log_warn(a.inputs, ": 'guidance' ignored: this model has no guidance embedding (klein)");
    } else if (c.guidance_embeds) {
        fail(a.inputs, ": missing input 'guidance' (expected [B]; this model embeds guidance)");
    }
    const Tensor img_ids = load_f32(require(*in_file, "img_ids", "[Li, 4] or [B, Li, 4]"));
    const Tensor txt_ids = load_f32(require(*in_file, "txt_ids", "[Lt, 4] or [B, Lt, 4]"));
    try {
        in.img_ids = shared_position_ids(img_ids, "img_ids");
        in.txt_ids = shared_position_ids(txt_ids, "txt_ids");
        model.validate(in);
    } catch (const Error& e) {
        fail(a.inputs, ": ", e.what());
    }

    auto t0 = std::chrono::steady_clock::now();
    Tensor out = model.forward(in);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log_info("forward on ", backend->name(), ": ", secs, " s; linear paths: ", backend->path_summary());

    SafetensorsWriter w;
    w.add_f32("output", out);
    w.write(a.output);
    log_info("wrote output ", shape_str(out.shape()), " to ", a.output);
}
}  // namespace

void register_forward(CLI::App& app) {
    auto* cmd =
        app.add_subcommand("forward",
                           "Run one transformer forward on inputs from a safetensors file (debugging).\n"
                           "IN holds hidden_states [B,Li,128], encoder_hidden_states [B,Lt,ctx], timestep [B]"
                           " (sigma, not x1000), guidance [B] (dev; ignored with a warning for klein),\n"
                           "img_ids [Li,4] or [B,Li,4], txt_ids [Lt,4] or [B,Lt,4] (the same for every sample).\n"
                           "OUT gets `output` [B,Li,128] f32.");
    auto a = std::make_shared<ForwardArgs>();
    cmd->add_option("--model", a->model, "transformer checkpoint: file, folder or index.json")->required();
    cmd->add_option("--inputs", a->inputs, "safetensors file with the inputs")->required();
    cmd->add_option("--output", a->output, "safetensors file to write")->required();
    cmd->add_option("--activations", a->activations,
                    "NVFP4 layers: w4a16 (exact weights, float activations) or w4a4 (activations quantized to "
                    "NVFP4 as a Blackwell FP4 GEMM does)")
        ->capture_default_str();
    cmd->add_option("--device", a->device, "auto (a usable GPU, else cpu), cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--threads", a->threads, "CPU threads (default: all cores or $FLUX2_THREADS)");
    add_lora_option(cmd, a->loras);
    cmd->callback([a] { run_forward(*a); });
}

}  // namespace flux2::cli
