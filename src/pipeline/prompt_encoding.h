#pragma once
// Prompt -> FLUX.2 prompt embeddings: chat template, tokenization to a fixed length, text encoder, stacked hidden
// layers (FLUX2_SPEC.md §2.2, §4). A PromptEncoder keeps the tokenizer and text encoder loaded (the server);
// encode_prompts loads them, encodes and releases them again, so the CLI frees the text encoder's memory before it
// binds the transformer.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/text_encoder/decoder_config.h"
#include "quant/weight_conversion.h"
#include "tensor/tensor.h"

namespace flux2 {

class TextEncoder;
class Tokenizer;

struct PromptEncodingOptions {
    int max_sequence_length = 512;
    std::vector<int> out_layers;  // empty: Mistral (dev) 10 20 30, Qwen3 (klein) 9 18 27
    WeightPrecision text_encoder_weights = WeightPrecision::as_stored;  // --text-encoder-precision
    bool stream_layers = false;                                         // --offload layers
};

struct EncodedPrompts {
    Tensor prompt_embeds;                          // [1, L, n * hidden]
    std::optional<Tensor> negative_prompt_embeds;  // same shape, when a negative prompt was encoded
    std::vector<int64_t> input_ids;                // [L] of the prompt
    std::vector<int64_t> attention_mask;           // [L]
    int64_t prompt_tokens() const;                 // real (unpadded) tokens of the prompt
};

class PromptEncoder {
public:
    // out_layers: the hidden layers stacked (empty: the family's default, read from the encoder's config).
    static PromptEncoder load(const std::string& text_encoder_path, const std::string& tokenizer_path,
                              const std::vector<int>& out_layers, Backend& backend,
                              WeightPrecision weights = WeightPrecision::as_stored);
    PromptEncoder(PromptEncoder&&) noexcept;
    PromptEncoder& operator=(PromptEncoder&&) noexcept;
    ~PromptEncoder();

    // Safe for one caller at a time (the text encoder's backend is not re-entrant).
    EncodedPrompts encode(const std::string& prompt, const std::optional<std::string>& negative_prompt,
                          int max_sequence_length) const;
    // TextEncoder::release_device_weights.
    int release_device_weights() const;
    // TextEncoder::stream_layer_weights (--offload layers).
    std::string stream_layer_weights();
    // TextEncoder::pin_host_weights (--offload model).
    std::string pin_host_weights();
    const DecoderConfig& text_encoder_config() const;

private:
    PromptEncoder() = default;
    std::unique_ptr<Tokenizer> tokenizer_;
    std::unique_ptr<TextEncoder> encoder_;
};

EncodedPrompts encode_prompts(const std::string& text_encoder_path, const std::string& tokenizer_path,
                              const std::string& prompt, const std::optional<std::string>& negative_prompt,
                              const PromptEncodingOptions& options, Backend& backend);

}  // namespace flux2
