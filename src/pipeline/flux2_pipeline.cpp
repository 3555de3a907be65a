#include "pipeline/flux2_pipeline.h"

#include <chrono>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "pipeline/image_ops.h"
#include "pipeline/latents.h"
#include "pipeline/rng.h"
#include "pipeline/scheduler.h"

namespace flux2 {

const char* variant_name(Flux2Variant v) {
    switch (v) {
        case Flux2Variant::dev:
            return "dev";
        case Flux2Variant::klein_distilled:
            return "klein (distilled)";
        case Flux2Variant::klein_base:
            return "klein (base, CFG)";
    }
    return "?";
}

Flux2Defaults defaults_for(Flux2Variant v) {
    switch (v) {
        case Flux2Variant::dev:
            return {50, 4.0f, {10, 20, 30}};
        case Flux2Variant::klein_distilled:
            return {4, 1.0f, {9, 18, 27}};
        case Flux2Variant::klein_base:
            return {50, 4.0f, {9, 18, 27}};
    }
    fail("unknown FLUX.2 variant");
}

Tensor repeat_batch(const Tensor& x, int64_t batch) {
    if (x.dim(0) == batch) return x;
    check(x.dim(0) == 1, "cannot repeat a batch of ", x.dim(0), " to ", batch);
    Shape s = x.shape();
    s[0] = batch;
    Tensor out = Tensor::zeros(s);
    const int64_t n = x.numel();
    for (int64_t b = 0; b < batch; ++b) std::memcpy(out.f32() + b * n, x.f32(), n * sizeof(float));
    return out;
}

namespace {
// Several reference images' tokens, one after the other (each image's own sequence of 2x2-patch tokens).
Tensor concat_tokens(const Tensor& a, const Tensor& ref) {
    const int64_t B = a.dim(0), La = a.dim(1), Lr = ref.dim(1), C = a.dim(2);
    Tensor out = Tensor::zeros({B, La + Lr, C});
    for (int64_t b = 0; b < B; ++b) {
        std::memcpy(out.f32() + b * (La + Lr) * C, a.f32() + b * La * C, La * C * sizeof(float));
        std::memcpy(out.f32() + (b * (La + Lr) + La) * C, ref.f32() + (ref.dim(0) == 1 ? 0 : b) * Lr * C,
                    Lr * C * sizeof(float));
    }
    return out;
}

// Image b's noise comes from its own seed's stream, so an image is reproducible alone or inside any batch.
Tensor seeded_noise(const GenerateParams& p, int64_t batch, int height, int width) {
    if (p.seeds.empty()) return initial_noise(p.seed, static_cast<int>(batch), height, width);
    check(static_cast<int64_t>(p.seeds.size()) == batch, "one seed per image: got ", p.seeds.size(), " seeds for ",
          batch, " images");
    Tensor out = Tensor::zeros({batch, 128, height / 16, width / 16});
    const int64_t per_image = out.numel() / batch;
    for (int64_t b = 0; b < batch; ++b) {
        const Tensor one = initial_noise(p.seeds[b], 1, height, width);
        std::memcpy(out.f32() + b * per_image, one.f32(), per_image * sizeof(float));
    }
    return out;
}

Tensor concat_rows(const Tensor& a, const Tensor& b) {
    Tensor out = Tensor::zeros({a.dim(0) + b.dim(0), a.dim(1)});
    std::memcpy(out.f32(), a.f32(), a.nbytes());
    std::memcpy(out.f32() + a.numel(), b.f32(), b.nbytes());
    return out;
}
}  // namespace

std::pair<Tensor, Tensor> Flux2Pipeline::encode_references(const std::vector<Image>& images,
                                                           const VaeTiling& tiling) const {
    std::vector<Tensor> tokens;
    std::vector<std::pair<int64_t, int64_t>> grids;
    for (const Image& img : images) {
        Tensor pixels = preprocess_reference_image(img);                     // [1, 3, h, w] in [-1, 1]
        Tensor z = patchify_latents(vae_encode_mean(vae_, pixels, tiling));  // [1, 128, h/16, w/16]
        batch_norm_normalize(z, vae_.latent_batch_norm());
        grids.emplace_back(z.dim(2), z.dim(3));
        tokens.push_back(pack_latents(z));
    }
    Tensor all = tokens.front();
    for (size_t i = 1; i < tokens.size(); ++i) all = concat_tokens(all, tokens[i]);
    return {all, reference_position_ids(grids)};
}

Tensor Flux2Pipeline::decode(const Tensor& latents, const Tensor& latent_ids, const VaeTiling& tiling) const {
    Tensor z = unpack_latents_with_ids(latents, latent_ids);  // [B, 128, h, w]
    batch_norm_denormalize(z, vae_.latent_batch_norm());
    return postprocess_to_unit(vae_decode(vae_, unpatchify_latents(z), tiling));
}

GenerateOutput Flux2Pipeline::generate(const GenerateParams& p, const Tensor& prompt_embeds,
                                       const std::optional<Tensor>& negative_prompt_embeds,
                                       const ProgressFn& progress) const {
    const Flux2Defaults defaults = defaults_for(variant_);
    GenerateOutput out;
    out.num_steps = p.num_steps > 0 ? p.num_steps : defaults.steps;
    out.guidance_scale = p.guidance_scale.value_or(defaults.guidance_scale);
    check(p.num_images >= 1, "num_images must be at least 1, got ", p.num_images);
    const int64_t B = p.num_images * prompt_embeds.dim(0);

    // 1. Reference images (editing): encoded once, appended after the target tokens at every step.
    std::optional<std::pair<Tensor, Tensor>> refs;
    if (!p.reference_images.empty()) refs = encode_references(p.reference_images, p.vae_tiling);

    // 2. Output size: explicit, else the first reference's processed size, else 1024².
    int width = p.width, height = p.height;
    if ((width == 0 || height == 0) && !p.reference_images.empty()) {
        Tensor first = preprocess_reference_image(p.reference_images.front());
        if (width == 0) width = static_cast<int>(first.dim(3));
        if (height == 0) height = static_cast<int>(first.dim(2));
    }
    width = width ? width : 1024;
    height = height ? height : 1024;
    check(width % 16 == 0 && height % 16 == 0, "width and height must be multiples of 16, got ", width, "x", height);
    out.width = width;
    out.height = height;
    const int64_t h = height / 16, w = width / 16, Li = h * w;

    // 3. Initial noise in the patchified layout, packed to tokens.
    Tensor noise = p.initial_noise ? *p.initial_noise : seeded_noise(p, B, height, width);
    check(noise.shape() == Shape{B, 128, h, w}, "initial noise must be [", B, ", 128, ", h, ", ", w, "], got ",
          shape_str(noise.shape()));
    // The latents stay on the transformer's backend (F32) from here to the decode: a step uploads and downloads
    // nothing, and the host waits only to report progress.
    Backend& be = transformer_.backend();
    Tensor latents = be.upload_state(pack_latents(noise));
    const Tensor latent_ids = image_position_ids(h, w);
    const Tensor ref_tokens = refs ? be.upload_state(repeat_batch(refs->first, B)) : Tensor();

    // 4. Schedule over the target tokens only.
    const FlowMatchSchedule schedule =
        p.sigmas ? flux2_schedule_from_sigmas(*p.sigmas, Li, out.num_steps) : flux2_schedule(out.num_steps, Li);
    out.num_steps = schedule.num_steps();

    // 5. Conditioning for every image of the batch.
    Flux2Inputs cond;
    // Uploaded once for all steps.
    cond.encoder_hidden_states = be.upload(repeat_batch(prompt_embeds, B));
    cond.txt_ids = text_position_ids(prompt_embeds.dim(1));
    cond.img_ids = refs ? concat_rows(latent_ids, refs->second) : latent_ids;
    if (variant_ == Flux2Variant::dev) cond.guidance = std::vector<float>(B, out.guidance_scale);
    const bool cfg = variant_ == Flux2Variant::klein_base && out.guidance_scale > 1.0f;
    Flux2Inputs uncond = cond;
    if (cfg) {
        check(negative_prompt_embeds.has_value(), "klein base with guidance ", out.guidance_scale,
              " needs negative prompt embeddings (true CFG)");
        uncond.encoder_hidden_states = be.upload(repeat_batch(*negative_prompt_embeds, B));
        uncond.txt_ids = text_position_ids(negative_prompt_embeds->dim(1));
    }
    log_info(variant_name(variant_), ": ", width, "x", height, ", ", out.num_steps, " steps, guidance ",
             out.guidance_scale, cfg ? " (true CFG)" : "", ", batch ", B,
             refs ? str(", ", p.reference_images.size(), " reference image(s)") : std::string());

    // 6. The timestep conditioning of every step, ahead of them: the steps copy theirs in, and under --offload
    // layers the linears that make it leave the device meanwhile. Part of the request's time, not of the steps'.
    std::vector<float> sigmas;
    for (int i = 0; i < out.num_steps; ++i) sigmas.push_back(schedule.timesteps[i] / 1000.0f);
    transformer_.precompute_conditioning(sigmas,
                                         cond.guidance ? std::optional<float>(out.guidance_scale) : std::nullopt, B);

    // 7. Denoising loop.
    const auto denoise_start = std::chrono::steady_clock::now();
    for (int i = 0; i < out.num_steps; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        // diffusers passes timestep = (sigma * 1000) / 1000 in float32; the model multiplies by 1000 again.
        const float t = schedule.timesteps[i] / 1000.0f;
        cond.timestep.assign(B, t);
        cond.hidden_states = refs ? be.concat(latents, ref_tokens, 1) : latents;
        auto image_tokens = [&](const Tensor& v) { return refs ? be.slice(v, 1, 0, Li) : v; };
        if (cfg) {
            uncond.timestep = cond.timestep;
            uncond.hidden_states = cond.hidden_states;
            // With CFG parallelism (--parallel cfg) the two forwards run on two devices at once.
            auto [v_cond, v_uncond] = transformer_.forward_guided(cond, uncond);
            const Tensor v_neg = image_tokens(v_uncond);
            euler_step(be, latents, image_tokens(v_cond), &v_neg, out.guidance_scale, schedule, i);
        } else {
            euler_step(be, latents, image_tokens(transformer_.forward(cond)), nullptr, 1.0f, schedule, i);
        }
        be.synchronize();  // the step's time is its work's, and a progress callback may stop the generation
        if (progress)
            progress(
                {i + 1, out.num_steps, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()});
    }

    // 8. Decode.
    const auto decode_start = std::chrono::steady_clock::now();
    out.denoise_seconds = std::chrono::duration<double>(decode_start - denoise_start).count();
    out.latents = be.download(latents);
    if (p.before_decode) p.before_decode();
    out.images = decode(out.latents, latent_ids, p.vae_tiling);
    out.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - decode_start).count();
    return out;
}

}  // namespace flux2
