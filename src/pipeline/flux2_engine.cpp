#include "pipeline/flux2_engine.h"

#include <algorithm>
#include <chrono>
#include <functional>

#include "core/error.h"
#include "core/log.h"
#include "core/timing.h"
#include "models/flux2/flux2_transformer.h"
#include "models/transformer_checkpoint.h"
#include "models/vae/vae.h"
#include "pipeline/image_ops.h"
#include "pipeline/prompt_encoding.h"
#include "pipeline/variant.h"

namespace flux2 {

Flux2Engine::~Flux2Engine() = default;

std::unique_ptr<Flux2Engine> Flux2Engine::load(const EngineOptions& options) {
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<Flux2Engine> e(new Flux2Engine());
    e->options_ = options;
    e->paths_ = resolve_components(options.components, /*needs_text_encoder=*/true);
    log_info("components: ", e->paths_.describe());
    e->backend_ = make_backend(options.backend);

    TransformerCheckpoint ckpt = TransformerCheckpoint::open(e->paths_.transformer);
    e->config_ = Flux2Config::for_checkpoint(ckpt);
    e->variant_ = pick_variant(e->config_, e->paths_, options.klein_mode);
    const std::vector<int> out_layers = options.text_encoder_out_layers.empty()
                                            ? defaults_for(e->variant_).text_encoder_out_layers
                                            : options.text_encoder_out_layers;
    e->prompt_encoder_ = std::make_unique<PromptEncoder>(PromptEncoder::load(
        e->paths_.text_encoder, e->paths_.tokenizer, out_layers, *e->backend_, options.text_encoder_weights));
    e->transformer_ = std::make_unique<Flux2Transformer>(Flux2Transformer::load(ckpt, e->config_, *e->backend_));
    e->vae_ = std::make_unique<Flux2Vae>(Flux2Vae::load(e->paths_.vae, *e->backend_));
    if (!options.loras.empty()) e->set_loras(e->loras_.load_specs(options.loras));
    // Nothing is on the device yet (weights are prepared at their first use): decide what stays there.
    const TextEncoderFootprint footprint =
        text_encoder_footprint(e->paths_.text_encoder, out_layers, options.text_encoder_weights);
    e->offload_ = choose_offload(options.offload, e->config_, &footprint, options.backend, *e->backend_,
                                 /*sequential=*/false, options.resident_budget_bytes, options.stream_e4m3);
    log_info("offload: ", offload_name(e->offload_.mode), " (", e->offload_.reason, ")");
    if (e->offload_.mode == Offload::layers) {
        log_layer_stream("text encoder", e->prompt_encoder_->stream_layer_weights());
        log_layer_stream("transformer", e->transformer_->stream_block_weights(e->offload_.transformer_stream));
    }
    if (e->offload_.mode == Offload::model) {
        // Every request uploads both components again: from page-locked memory, at the bus's full speed.
        log_host_pinning("text encoder", e->prompt_encoder_->pin_host_weights());
        log_host_pinning("transformer", e->transformer_->pin_host_weights());
    }
    log_info("models loaded (", variant_name(e->variant_), ") in ", seconds_since(t0), " s; memory ",
             e->backend_->peak_memory_bytes() / 1e9, " GB");
    return e;
}

void Flux2Engine::set_loras(const std::vector<std::pair<std::string, float>>& active) {
    loras_.set_active(*transformer_, active);
}

const std::vector<ActiveLora>& Flux2Engine::active_loras() const { return transformer_->loras(); }

EngineResult Flux2Engine::generate(const EngineRequest& r, const ProgressFn& progress) {
    const Flux2Defaults defaults = defaults_for(variant_);
    const float guidance = r.guidance_scale.value_or(defaults.guidance_scale);
    const bool cfg = variant_ == Flux2Variant::klein_base && guidance > 1.0f;

    EngineResult out;
    const auto t0 = std::chrono::steady_clock::now();
    backend_->reset_peak_memory();
    const EncodedPrompts enc = prompt_encoder_->encode(
        r.prompt, cfg ? std::optional<std::string>(r.negative_prompt) : std::nullopt, r.max_sequence_length);
    out.prompt_tokens = enc.prompt_tokens();
    if (offload_.mode == Offload::model)
        log_debug("offload: text encoder weights released (", prompt_encoder_->release_device_weights(), " linears)");
    out.text_encoder_seconds = seconds_since(t0);
    out.encode_peak_bytes = backend_->peak_memory_bytes();
    out.device_used_bytes = backend_->device_memory_used_bytes();
    backend_->reset_peak_memory();

    GenerateParams params;
    params.width = r.width;
    params.height = r.height;
    params.num_steps = r.num_steps;
    params.guidance_scale = guidance;
    params.seed = r.seed;
    params.seeds = r.seeds;
    params.num_images = r.num_images;
    params.reference_images = r.reference_images;
    params.vae_tiling = options_.vae_tiling;
    const std::function<void()> release = release_before_decode(offload_.mode, *transformer_, *backend_);
    params.before_decode = [&] {
        out.denoise_peak_bytes = backend_->peak_memory_bytes();
        out.device_used_bytes = std::max(out.device_used_bytes, backend_->device_memory_used_bytes());
        if (release) release();
        backend_->reset_peak_memory();
    };
    const Flux2Pipeline pipeline(variant_, *transformer_, *vae_);
    const GenerateOutput g = pipeline.generate(params, enc.prompt_embeds, enc.negative_prompt_embeds, progress);

    for (int i = 0; i < g.images.dim(0); ++i) out.images.push_back(unit_tensor_to_image(g.images, i));
    out.width = g.width;
    out.height = g.height;
    out.num_steps = g.num_steps;
    out.guidance_scale = g.guidance_scale;
    out.denoise_seconds = g.denoise_seconds;
    out.decode_seconds = g.decode_seconds;
    out.decode_peak_bytes = backend_->peak_memory_bytes();
    out.peak_memory_bytes = std::max({out.encode_peak_bytes, out.denoise_peak_bytes, out.decode_peak_bytes});
    out.device_used_bytes = std::max(out.device_used_bytes, backend_->device_memory_used_bytes());
    return out;
}

}  // namespace flux2
