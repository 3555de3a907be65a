// `flux2 generate`: prompt -> image, with sglang's flag names where sglang has them.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <optional>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/demo.h"
#include "cli/model_options.h"
#include "cli/progress.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parallel.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/lora/lora_registry.h"
#include "models/transformer_checkpoint.h"
#include "models/vae/vae.h"
#include "pipeline/flux2_pipeline.h"
#include "pipeline/image_ops.h"
#include "pipeline/model_components.h"
#include "pipeline/offload.h"
#include "pipeline/prompt_encoding.h"
#include "pipeline/variant.h"

namespace fs = std::filesystem;

namespace flux2::cli {

namespace {
struct GenerateArgs {
    ModelOptions model;
    ParallelOptions parallel;
    std::string prompt, negative_prompt, output_path = "outputs";
    std::string prompt_embeds, initial_noise, save_latents;
    std::vector<std::string> images;
    int width = 0, height = 0, steps = 0, num_images = 1, max_sequence_length = 512;
    float guidance_scale = NAN;
    uint64_t seed = 0;
};

// True for a .png file, false for a folder. Checked before any work, so that a typo costs nothing.
bool output_is_file(const std::string& output_path) {
    std::string ext = fs::path(output_path).extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    // Without this, "cat.jpg" would silently become a folder holding flux2_00000.png.
    check(ext != ".jpg" && ext != ".jpeg" && ext != ".webp", "--output-path ", output_path,
          ": images are written as PNG only; give a .png file or a folder");
    return ext == ".png";
}

std::vector<std::string> output_files(const std::string& output_path, int count) {
    const fs::path p(output_path);
    const bool is_file = output_is_file(output_path);
    if (!is_file) fs::create_directories(p);
    std::vector<std::string> files;
    for (int i = 0; i < count; ++i) {
        if (is_file) {
            files.push_back(count == 1
                                ? p.string()
                                : (p.parent_path() / (p.stem().string() + "_" + std::to_string(i) + ".png")).string());
        } else {
            int n = 0;
            fs::path f;
            do f = p / str("flux2_", std::setfill('0'), std::setw(5), n++, ".png");
            while (fs::exists(f) || std::find(files.begin(), files.end(), f.string()) != files.end());
            files.push_back(f.string());
        }
    }
    return files;
}

void run_generate(GenerateArgs a) {
    // 0 means "the default": the reference image's size, else 1024 (the demo: 128).
    check(a.width >= 0 && a.height >= 0 && a.width % 16 == 0 && a.height % 16 == 0,
          "--width and --height must be multiples of 16, got ", a.width, "x", a.height);
    output_is_file(a.output_path);
    check(a.prompt.empty() || a.prompt_embeds.empty(), "give --prompt or --prompt-embeds, not both");
    if (a.model.demo()) {
        log_info("no --model-path given: using the built-in demo model (", use_demo_model(a.model.components),
                 "), trained to draw coloured circles, squares and triangles on a plain background, as its prompts "
                 "say (docs/DEMO_MODEL.md). Pass --model-path to use real FLUX.2 weights.");
        if (a.width == 0 && a.images.empty()) a.width = kDemoImageSize;
        if (a.height == 0 && a.images.empty()) a.height = kDemoImageSize;
        if (a.prompt.empty() && a.prompt_embeds.empty()) a.prompt = kDemoPrompt;
    }
    check(!a.prompt.empty() || !a.prompt_embeds.empty(), "give a --prompt (or --prompt-embeds FILE)");
    const bool encode = a.prompt_embeds.empty();
    ComponentPaths paths = resolve_components(a.model.components, encode);
    log_info("components: ", paths.describe());
    auto backend = make_backend(a.model.backend_options());

    TransformerCheckpoint ckpt = TransformerCheckpoint::open(paths.transformer);
    const Flux2Config config = Flux2Config::for_checkpoint(ckpt);
    const Flux2Variant variant = pick_variant(config, paths, a.model.klein_mode);
    const Flux2Defaults defaults = defaults_for(variant);
    const float guidance = std::isnan(a.guidance_scale) ? defaults.guidance_scale : a.guidance_scale;
    const bool cfg = variant == Flux2Variant::klein_base && guidance > 1.0f;
    check(a.parallel.gpus == 1 || a.parallel.parallel != "cfg" || cfg, "--parallel cfg runs the conditional and ",
          "unconditional forwards of true CFG on two GPUs, but this run has none to split (", variant_name(variant),
          ", guidance ", guidance, "): it needs klein base with --guidance-scale above 1");
    check_offload_for_gpus(a.model, a.parallel);

    // What stays on the device. The text encoder is gone before the transformer loads, so only the larger of the
    // two is ever resident. Several ranks keep theirs (the other ranks hold their own copies).
    const std::vector<int> out_layers =
        a.model.out_layers.empty() ? defaults.text_encoder_out_layers : a.model.out_layers;
    std::optional<TextEncoderFootprint> text_encoder;
    if (encode) text_encoder = text_encoder_footprint(paths.text_encoder, out_layers, a.model.text_encoder_weights());
    const OffloadChoice offload =
        a.parallel.gpus > 1 ? OffloadChoice{Offload::none, "--gpus: every rank keeps its weights"}
                            : choose_offload(a.model.offload, config, text_encoder ? &*text_encoder : nullptr,
                                             a.model.backend_options(), *backend,
                                             /*sequential=*/true, a.model.resident_budget_bytes(), a.model.stream_e4m3);
    log_info("offload: ", offload_name(offload.mode), " (", offload.reason, ")");

    // 1. Prompt embeddings first, so the text encoder is gone before the transformer's weights are bound.
    Tensor prompt_embeds;
    std::optional<Tensor> negative_embeds;
    if (encode) {
        PromptEncodingOptions po;
        po.max_sequence_length = a.max_sequence_length;
        po.out_layers = out_layers;
        po.text_encoder_weights = a.model.text_encoder_weights();
        po.stream_layers = offload.mode == Offload::layers;
        EncodedPrompts enc =
            encode_prompts(paths.text_encoder, paths.tokenizer, a.prompt,
                           cfg ? std::optional<std::string>(a.negative_prompt) : std::nullopt, po, *backend);
        prompt_embeds = enc.prompt_embeds;
        negative_embeds = enc.negative_prompt_embeds;
    } else {
        auto f = SafetensorsFile::open(a.prompt_embeds);
        const TensorInfo* pe = f->find("prompt_embeds");
        check(pe != nullptr, a.prompt_embeds, ": no 'prompt_embeds' tensor (expected [B, Lt, ",
              config.joint_attention_dim, "])");
        prompt_embeds = load_f32(*pe);
        // `flux2 encode-prompt` records its prompt; it becomes the PNG's prompt text.
        if (auto it = f->metadata().find("prompt"); it != f->metadata().end()) a.prompt = it->second;
        if (const TensorInfo* ne = f->find("negative_prompt_embeds")) negative_embeds = load_f32(*ne);
        check(!cfg || negative_embeds, a.prompt_embeds,
              ": klein base with guidance > 1 needs 'negative_prompt_embeds'");
    }
    check(prompt_embeds.ndim() == 3 && prompt_embeds.dim(2) == config.joint_attention_dim,
          "prompt embeddings must be [B, Lt, ", config.joint_attention_dim, "] for this transformer, got ",
          shape_str(prompt_embeds.shape()));

    // 2. Models.
    Flux2Transformer transformer = Flux2Transformer::load(ckpt, config, *backend);
    start_parallel(a.parallel, transformer, a.model.backend_options(), [&](Backend& rank_backend) {
        TransformerCheckpoint rank_ckpt = TransformerCheckpoint::open(paths.transformer);
        return Flux2Transformer::load(rank_ckpt, config, rank_backend);
    });
    if (offload.mode == Offload::layers)
        log_layer_stream("transformer", transformer.stream_block_weights(offload.transformer_stream));
    LoraRegistry loras;
    if (!a.model.loras.empty()) loras.set_active(transformer, loras.load_specs(a.model.loras));
    Flux2Vae vae = Flux2Vae::load(paths.vae, *backend);

    // 3. Generate.
    GenerateParams params;
    params.width = a.width;
    params.height = a.height;
    params.num_steps = a.steps;
    params.guidance_scale = guidance;
    params.seed = a.seed;
    params.num_images = a.num_images;
    params.vae_tiling = a.model.vae_tiling_options();
    for (const auto& path : a.images) params.reference_images.push_back(read_image(path));
    if (!a.initial_noise.empty()) {
        auto f = SafetensorsFile::open(a.initial_noise);
        const TensorInfo* l = f->find("latents");
        check(l != nullptr, a.initial_noise, ": no 'latents' tensor (expected [B, 128, H/16, W/16])");
        params.initial_noise = load_f32(*l);
    }
    // The text encoder is gone already; --offload model also gives the transformer's weights back before the decode,
    // and every offloading mode the recorded step's memory.
    params.before_decode = release_before_decode(offload.mode, transformer, *backend);
    Flux2Pipeline pipeline(variant, transformer, vae);
    ProgressBar bar(isatty(STDERR_FILENO) && log_level() <= LogLevel::info);
    GenerateOutput out = pipeline.generate(params, prompt_embeds, negative_embeds,
                                           [&](const StepProgress& s) { bar.update(s.step, s.total, s.step_seconds); });
    bar.finish();
    log_info("linear paths: ", backend->path_summary());

    // 4. Save.
    if (!a.save_latents.empty()) {
        SafetensorsWriter w;
        w.add_f32("latents", out.latents);
        w.write(a.save_latents);
        log_info("wrote latents ", shape_str(out.latents.shape()), " to ", a.save_latents);
    }
    auto write_image = [&](const std::string& file, int64_t i) {
        ImageText text{{"prompt", a.prompt},
                       {"seed", std::to_string(a.seed + static_cast<uint64_t>(i))},
                       {"steps", std::to_string(out.num_steps)},
                       {"guidance", str(out.guidance_scale)},
                       {"model", paths.transformer},
                       {"variant", variant_name(variant)},
                       {"precision", str(backend->name(), a.model.precision.empty() ? "" : " " + a.model.precision, " ",
                                         a.model.activations)},
                       {"software", "flux2.cpp"}};
        if (!a.model.loras.empty()) {
            std::string used;
            for (const std::string& spec : a.model.loras) used += str(used.empty() ? "" : " ", spec);
            text["loras"] = used;
        }
        if (cfg) text["negative_prompt"] = a.negative_prompt;
        write_png(file, unit_tensor_to_image(out.images, static_cast<int>(i)), text);
    };
    const auto files = output_files(a.output_path, static_cast<int>(out.images.dim(0)));
    // The images are encoded at once (a 1024x1024 PNG takes 0.1-0.2 s of a core), their paths printed in order.
    parallel_for(static_cast<int64_t>(files.size()), 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) write_image(files[i], i);
    });
    for (const std::string& file : files) std::printf("%s\n", file.c_str());
}
}  // namespace

void register_generate(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "generate",
        "Generate images from a prompt (FLUX.2 dev, klein distilled, klein base with CFG), optionally editing\n"
        "reference images. With no --model-path it runs the built-in demo model, a small FLUX.2 trained to draw\n"
        "scenes of coloured shapes (\"a large red circle on the left, on a yellow background\"), at 128x128.\n"
        "Example: flux2 generate --model-path black-forest-labs/FLUX.2-dev --transformer-weights-path \\\n"
        "           black-forest-labs/FLUX.2-dev-NVFP4 --prompt \"a cat\" --device cuda --output-path cat.png");
    auto a = std::make_shared<GenerateArgs>();
    add_model_options(cmd, a->model);
    add_parallel_options(cmd, a->parallel);
    cmd->add_option("--prompt", a->prompt, "what to draw");
    cmd->add_option("--negative-prompt", a->negative_prompt, "klein base (true CFG) only");
    cmd->add_option("--width", a->width, "image width, multiple of 16 (default 1024, or the reference's)");
    cmd->add_option("--height", a->height, "image height, multiple of 16 (default 1024, or the reference's)");
    cmd->add_option("--num-inference-steps", a->steps, "denoising steps (default: dev 50, klein 4, klein base 50)")
        ->check(CLI::Range(0, 10000));
    cmd->add_option("--guidance-scale", a->guidance_scale, "dev: embedded guidance (4.0); klein base: CFG scale (4.0)");
    // CLI11 would wrap "-1" to 2^64 - 1; some UIs use -1 for "random", which flux2 does not do.
    const CLI::Validator no_minus([](std::string& v) { return v.starts_with('-') ? "the seed is 0 or more" : ""; }, "");
    cmd->add_option("--seed", a->seed, "noise seed (image i of a batch uses seed + i)")
        ->check(no_minus)
        ->capture_default_str();
    cmd->add_option("--image", a->images, "reference image (PNG/JPEG) for editing; repeat for several");
    cmd->add_option("--num-images", a->num_images, "images per prompt")->capture_default_str();
    cmd->add_option("--output-path", a->output_path, "a .png file, or a folder for numbered files")
        ->capture_default_str();
    cmd->add_option("--max-sequence-length", a->max_sequence_length, "text tokens")->capture_default_str();
    cmd->add_option("--prompt-embeds", a->prompt_embeds,
                    "safetensors with prompt_embeds [B,Lt,ctx] (and negative_prompt_embeds) instead of a text encoder");
    cmd->add_option("--initial-noise", a->initial_noise,
                    "safetensors with latents [B,128,H/16,W/16] replacing the noise");
    cmd->add_option("--save-latents", a->save_latents, "write the final packed latents [B,Li,128] here");
    cmd->callback([a] { run_generate(*a); });
}

}  // namespace flux2::cli
