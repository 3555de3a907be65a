#pragma once
// Text-to-image and reference-image editing for FLUX.2 dev and klein, read top-down like diffusers'
// Flux2Pipeline.__call__ / Flux2KleinPipeline.__call__ (FLUX2_SPEC.md §2, §4). Prompt embeddings come in
// already encoded, so the caller can free the text encoder before the transformer runs.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/image.h"
#include "models/flux2/flux2_transformer.h"
#include "models/vae/vae.h"
#include "pipeline/vae_tiling.h"
#include "tensor/tensor.h"

namespace flux2 {

enum class Flux2Variant {
    dev,              // guidance-distilled: embedded guidance, one forward per step
    klein_distilled,  // no guidance, one forward per step
    klein_base,       // true CFG with a negative prompt: v = v_neg + g (v_cond - v_neg)
};
const char* variant_name(Flux2Variant v);

struct Flux2Defaults {
    int steps;
    float guidance_scale;
    std::vector<int> text_encoder_out_layers;
};
Flux2Defaults defaults_for(Flux2Variant v);

struct GenerateParams {
    int width = 0, height = 0;  // 0: the first reference image's processed size, else 1024
    int num_steps = 0;          // 0: the variant's default
    std::optional<float> guidance_scale;
    uint64_t seed = 0;            // image b of the batch uses seed + b ...
    std::vector<uint64_t> seeds;  // ... unless seeds are given, one per image
    int num_images = 1;           // images per prompt (the batch)
    std::vector<Image> reference_images;
    std::optional<Tensor> initial_noise;        // [B, 128, h/16, w/16] instead of the seeded noise
    std::optional<std::vector<double>> sigmas;  // custom schedule (one per step)
    VaeTiling vae_tiling;                       // tiled VAE decode and reference encode (--vae-tiling, auto)
    // Runs once the last step is done, before the VAE decode: --offload model gives the transformer's device
    // memory back there.
    std::function<void()> before_decode;
};

struct StepProgress {
    int step, total;
    double step_seconds;
};
// Called after every denoising step. It may throw to stop the generation there (the server's cancellation).
using ProgressFn = std::function<void(const StepProgress&)>;

struct GenerateOutput {
    Tensor images;   // [B, H, W, 3] float in [0, 1] (before uint8 conversion)
    Tensor latents;  // [B, Li, 128] packed latents after the last step
    int width = 0, height = 0, num_steps = 0;
    float guidance_scale = 0;
    double denoise_seconds = 0, decode_seconds = 0;  // wall time of the step loop and of the VAE decode
};

class Flux2Pipeline {
public:
    Flux2Pipeline(Flux2Variant variant, const Flux2Transformer& transformer, const Flux2Vae& vae)
        : variant_(variant), transformer_(transformer), vae_(vae) {}

    // prompt_embeds [1 or B, Lt, ctx]; negative_prompt_embeds likewise, used only by klein_base with guidance > 1.
    GenerateOutput generate(const GenerateParams& params, const Tensor& prompt_embeds,
                            const std::optional<Tensor>& negative_prompt_embeds, const ProgressFn& progress = {}) const;

    // Reference images -> packed, BatchNorm-normalized latent tokens [1, Lref, 128] and their ids [Lref, 4].
    std::pair<Tensor, Tensor> encode_references(const std::vector<Image>& images, const VaeTiling& tiling = {}) const;

private:
    Tensor decode(const Tensor& latents, const Tensor& latent_ids, const VaeTiling& tiling) const;

    Flux2Variant variant_;
    const Flux2Transformer& transformer_;
    const Flux2Vae& vae_;
};

// Repeats each row of [n, ...] `times` times along axis 0 (prompt embeddings per image of the batch).
Tensor repeat_batch(const Tensor& x, int64_t batch);

}  // namespace flux2
