// `flux2 encode-prompt`: the prompt embeddings a pipeline would feed its transformer, written for inspection
// (and for `flux2 generate --prompt-embeds`).
#include <cstdio>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/prompt_input.h"
#include "core/error.h"
#include "core/log.h"
#include "io/hf_cache.h"
#include "io/safetensors.h"
#include "pipeline/model_components.h"
#include "pipeline/prompt_encoding.h"

namespace flux2::cli {

namespace {
struct EncodePromptArgs {
    ComponentArgs components;
    std::string prompt, prompt_file, negative_prompt, output, device = "auto", text_encoder_precision = "bf16";
    bool with_negative = false;
    int max_sequence_length = 512;
    std::vector<int> out_layers;
};

void run_encode_prompt(const EncodePromptArgs& a) {
    ComponentArgs c = a.components;
    if (c.model_path.empty() && c.text_encoder_path.empty())
        fail("give --model-path (a pipeline with text_encoder/ and tokenizer/) or --text-encoder");
    std::string te = c.text_encoder_path, tok;
    if (!c.model_path.empty()) {
        ComponentPaths paths = resolve_components(c, /*needs_text_encoder=*/true, /*needs_vae=*/false);
        te = paths.text_encoder;
        tok = paths.tokenizer;
    } else {
        te = resolve_local_or_cached(c.text_encoder_path, "--text-encoder");
        tok = find_tokenizer_for(te);
    }
    BackendOptions options;
    options.device = a.device;
    auto backend = make_backend(options);
    PromptEncodingOptions po;
    po.max_sequence_length = a.max_sequence_length;
    po.out_layers = a.out_layers;
    po.text_encoder_weights = parse_weight_precision(a.text_encoder_precision, "--text-encoder-precision");
    EncodedPrompts enc =
        encode_prompts(te, tok, a.prompt,
                       a.with_negative ? std::optional<std::string>(a.negative_prompt) : std::nullopt, po, *backend);
    SafetensorsWriter w;
    w.add_f32("prompt_embeds", enc.prompt_embeds);
    if (enc.negative_prompt_embeds) w.add_f32("negative_prompt_embeds", *enc.negative_prompt_embeds);
    const int64_t n = static_cast<int64_t>(enc.input_ids.size());
    w.add("input_ids", DType::I64, {1, n}, enc.input_ids.data(), n * sizeof(int64_t));
    w.add("attention_mask", DType::I64, {1, n}, enc.attention_mask.data(), n * sizeof(int64_t));
    w.set_metadata("prompt", a.prompt);
    w.write(a.output);
    log_info("wrote prompt_embeds ", shape_str(enc.prompt_embeds.shape()), " to ", a.output);
}
}  // namespace

void register_encode_prompt(CLI::App& app) {
    auto* cmd = app.add_subcommand("encode-prompt",
                                   "Encode a prompt with the model's text encoder and write prompt_embeds (and "
                                   "input_ids, attention_mask) as safetensors; usable with generate --prompt-embeds");
    auto a = std::make_shared<EncodePromptArgs>();
    cmd->add_option("--model-path", a->components.model_path,
                    "pipeline folder or repo id with text_encoder/ + tokenizer/");
    cmd->add_option("--base-model-path", a->components.base_model_path,
                    "where a transformer-only model finds its encoder")
        ->capture_default_str();
    cmd->add_option("--text-encoder", a->components.text_encoder_path,
                    "text encoder folder (tokenizer inside or beside)");
    auto* prompt = cmd->add_option("--prompt", a->prompt, "the prompt");
    cmd->add_option("--prompt-file", a->prompt_file,
                    "read the prompt from this file (- for stdin); the whole file is one prompt, one trailing line "
                    "break dropped")
        ->excludes(prompt);
    auto* neg = cmd->add_option("--negative-prompt", a->negative_prompt, "also encode this (klein base CFG)");
    cmd->add_option("--max-sequence-length", a->max_sequence_length, "tokens")->capture_default_str();
    cmd->add_option("--text-encoder-out-layers", a->out_layers,
                    "hidden layers to stack (default Mistral 10 20 30, Qwen3 9 18 27)");
    cmd->add_option("--device", a->device, "auto (a usable GPU, else cpu), cpu, cuda or cuda:N")->capture_default_str();
    cmd->add_option("--text-encoder-precision", a->text_encoder_precision,
                    "bf16 (the weights as stored), fp8 (E4M3 per output channel) or fp4 (NVFP4), converted at load")
        ->capture_default_str();
    cmd->add_option("--output", a->output, "safetensors file to write")->required();
    cmd->callback([a, neg, prompt] {
        check(prompt->count() > 0 || !a->prompt_file.empty(), "give --prompt TEXT or --prompt-file FILE");
        if (!a->prompt_file.empty()) a->prompt = single_prompt(read_prompt_source(a->prompt_file));
        a->with_negative = neg->count() > 0;
        run_encode_prompt(*a);
    });
}

}  // namespace flux2::cli
