#include "pipeline/prompt_encoding.h"

#include <chrono>

#include "core/error.h"
#include "core/log.h"
#include "models/text_encoder/decoder_checkpoint.h"
#include "models/text_encoder/text_encoder.h"
#include "models/tokenizer/chat_template.h"
#include "models/tokenizer/tokenizer.h"
#include "pipeline/offload.h"

namespace flux2 {

int64_t EncodedPrompts::prompt_tokens() const {
    int64_t tokens = 0;
    for (int64_t m : attention_mask) tokens += m;
    return tokens;
}

PromptEncoder::PromptEncoder(PromptEncoder&&) noexcept = default;
PromptEncoder& PromptEncoder::operator=(PromptEncoder&&) noexcept = default;
PromptEncoder::~PromptEncoder() = default;

PromptEncoder PromptEncoder::load(const std::string& text_encoder_path, const std::string& tokenizer_path,
                                  const std::vector<int>& out_layers, Backend& backend, WeightPrecision weights) {
    check(!text_encoder_path.empty(), "encoding a prompt needs a text encoder");
    check(!tokenizer_path.empty(), "no tokenizer found for the text encoder ", text_encoder_path);
    PromptEncoder pe;
    pe.tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::load(tokenizer_path));
    std::vector<int64_t> layers(out_layers.begin(), out_layers.end());
    if (layers.empty()) {
        // The default layers differ between Mistral (dev) and Qwen3 (klein): read the family from the config.
        const DecoderFamily family = DecoderCheckpoint::open(text_encoder_path).config().family;
        layers = flux2_hidden_layers(family);
    }
    TextEncoderOptions options;
    options.weights = weights;
    pe.encoder_ = std::make_unique<TextEncoder>(TextEncoder::load(text_encoder_path, layers, backend, options));
    return pe;
}

EncodedPrompts PromptEncoder::encode(const std::string& prompt, const std::optional<std::string>& negative_prompt,
                                     int max_sequence_length) const {
    check(max_sequence_length > 0, "max_sequence_length must be positive, got ", max_sequence_length);
    const TemplateKind kind =
        encoder_->config().family == DecoderFamily::mistral ? TemplateKind::mistral : TemplateKind::qwen3;
    auto encode_one = [&](const std::string& text, EncodedPrompts* ids_out) {
        std::vector<int32_t> mask;
        std::vector<int32_t> ids = encode_prompt_ids(*tokenizer_, kind, text, max_sequence_length, &mask);
        TokenBatch batch;
        batch.batch = 1;
        batch.length = static_cast<int64_t>(ids.size());
        batch.ids.assign(ids.begin(), ids.end());
        batch.attention_mask.assign(mask.begin(), mask.end());
        if (ids_out) {
            ids_out->input_ids = batch.ids;
            ids_out->attention_mask = batch.attention_mask;
        }
        return encoder_->encode(batch);
    };
    EncodedPrompts out;
    out.prompt_embeds = encode_one(prompt, &out);
    if (negative_prompt) out.negative_prompt_embeds = encode_one(*negative_prompt, nullptr);
    return out;
}

int PromptEncoder::release_device_weights() const { return encoder_->release_device_weights(); }

std::string PromptEncoder::stream_layer_weights() { return encoder_->stream_layer_weights(); }

std::string PromptEncoder::pin_host_weights() { return encoder_->pin_host_weights(); }

const DecoderConfig& PromptEncoder::text_encoder_config() const { return encoder_->config(); }

EncodedPrompts encode_prompts(const std::string& text_encoder_path, const std::string& tokenizer_path,
                              const std::string& prompt, const std::optional<std::string>& negative_prompt,
                              const PromptEncodingOptions& options, Backend& backend) {
    check(options.max_sequence_length > 0, "--max-sequence-length must be positive");
    const auto t0 = std::chrono::steady_clock::now();
    PromptEncoder encoder = PromptEncoder::load(text_encoder_path, tokenizer_path, options.out_layers, backend,
                                                options.text_encoder_weights);
    if (options.stream_layers) log_layer_stream("text encoder", encoder.stream_layer_weights());
    EncodedPrompts out = encoder.encode(prompt, negative_prompt, options.max_sequence_length);
    log_info("encoded prompt (", out.prompt_tokens(), " tokens) in ",
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), " s; peak memory so far ",
             backend.peak_memory_bytes() / 1e9, " GB; text encoder released");
    return out;
}

}  // namespace flux2
