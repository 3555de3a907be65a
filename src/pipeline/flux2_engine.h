#pragma once
// A FLUX.2 pipeline whose components stay loaded: text encoder + tokenizer, transformer and VAE are read once and
// every request runs on them (`flux2 serve`). Each request takes the same steps as `flux2 generate`: encode the
// prompt, Flux2Pipeline::generate, convert to 8-bit images, so both give the same pixels for the same inputs.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/image.h"
#include "models/flux2/flux2_config.h"
#include "models/lora/lora_registry.h"
#include "pipeline/flux2_pipeline.h"
#include "pipeline/model_components.h"
#include "pipeline/offload.h"
#include "quant/weight_conversion.h"

namespace flux2 {

struct EngineOptions {
    ComponentArgs components;
    std::string klein_mode = "auto";
    BackendOptions backend;
    std::vector<int> text_encoder_out_layers;  // empty: the variant's default
    std::vector<std::string> loras;            // "FILE[:STRENGTH]": loaded under their file stems and active
    VaeTiling vae_tiling;                      // for every request (--vae-tiling, else automatic above a size)
    WeightPrecision text_encoder_weights = WeightPrecision::as_stored;  // --text-encoder-precision
    std::string offload = "auto";        // --offload none|model|layers|auto (pipeline/offload.h)
    int64_t resident_budget_bytes = -1;  // --resident-budget (layers); negative: the mode's default
    int stream_e4m3 = 0;                 // --stream-e4m3 (layers)
};

struct EngineRequest {
    std::string prompt;
    std::string negative_prompt;  // klein base with guidance > 1 only (true CFG)
    int width = 0, height = 0;    // 0: the first reference's processed size, else 1024
    int num_steps = 0;            // 0: the variant's default
    std::optional<float> guidance_scale;
    uint64_t seed = 0;  // image b uses seed + b, unless seeds has one per image
    std::vector<uint64_t> seeds;
    int num_images = 1;
    int max_sequence_length = 512;
    std::vector<Image> reference_images;
};

struct EngineResult {
    std::vector<Image> images;
    int width = 0, height = 0, num_steps = 0;
    float guidance_scale = 0;
    int64_t prompt_tokens = 0;
    double text_encoder_seconds = 0, denoise_seconds = 0, decode_seconds = 0;
    // Peak memory of the backend during each phase (the device's on a GPU), and of the whole request (their max).
    // A phase's peak counts what stays from earlier ones (weights, a recorded step's memory).
    int64_t encode_peak_bytes = 0, denoise_peak_bytes = 0, decode_peak_bytes = 0;
    int64_t peak_memory_bytes = 0;
    // The device's used memory as its driver sees it (Backend::device_memory_used_bytes: contexts, libraries and
    // the allocators' reserves included, every process's) at the end of each phase, the highest; -1 without a
    // device. The allocators keep what a phase reserved until a trim, so this is what a card of that size must
    // hold, where the peaks above count only the tensors.
    int64_t device_used_bytes = -1;
};

class PromptEncoder;
class Flux2Transformer;
class Flux2Vae;

class Flux2Engine {
public:
    // Resolves the components as `generate` does, makes the backend and loads everything (minutes for real models).
    static std::unique_ptr<Flux2Engine> load(const EngineOptions& options);
    ~Flux2Engine();

    // One request, on the calling thread; not re-entrant (one job at a time per device). `progress` runs after each
    // denoising step and may throw to cancel.
    EngineResult generate(const EngineRequest& request, const ProgressFn& progress = {});

    Flux2Variant variant() const { return variant_; }
    const Flux2Config& config() const { return config_; }
    const ComponentPaths& paths() const { return paths_; }
    Backend& backend() { return *backend_; }
    // The resident transformer, e.g. to make it drive several devices (`serve --gpus`) before the first request.
    Flux2Transformer& transformer() { return *transformer_; }
    // Adapters stay loaded by name; set_loras switches the active ones between requests without reloading
    // anything (checked first: on an Error the previous ones stay active). Call it from the worker, between jobs.
    LoraRegistry& lora_registry() { return loras_; }
    void set_loras(const std::vector<std::pair<std::string, float>>& active);
    const std::vector<ActiveLora>& active_loras() const;
    // Whether a negative prompt / CFG scale means anything for this model.
    bool has_true_cfg() const { return variant_ == Flux2Variant::klein_base; }
    Offload offload() const { return offload_.mode; }

private:
    Flux2Engine() = default;

    EngineOptions options_;
    ComponentPaths paths_;
    Flux2Config config_;
    Flux2Variant variant_ = Flux2Variant::dev;
    std::unique_ptr<Backend> backend_;
    std::unique_ptr<PromptEncoder> prompt_encoder_;
    std::unique_ptr<Flux2Transformer> transformer_;
    std::unique_ptr<Flux2Vae> vae_;
    LoraRegistry loras_;
    OffloadChoice offload_;
};

}  // namespace flux2
