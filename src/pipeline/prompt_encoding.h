#pragma once
// Prompt -> FLUX.2 prompt embeddings: chat template, tokenization to a fixed length, text encoder, stacked hidden
// layers (FLUX2_SPEC.md §2.2, §4). The text encoder lives only inside encode_prompts, so its memory is released
// before the caller binds the transformer.
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "tensor/tensor.h"

namespace flux2 {

struct PromptEncodingOptions {
    int max_sequence_length = 512;
    std::vector<int> out_layers;  // empty: Mistral (dev) 10 20 30, Qwen3 (klein) 9 18 27
};

struct EncodedPrompts {
    Tensor prompt_embeds;                         // [1, L, n * hidden]
    std::optional<Tensor> negative_prompt_embeds;  // same shape, when a negative prompt was encoded
    std::vector<int64_t> input_ids;               // [L] of the prompt
    std::vector<int64_t> attention_mask;          // [L]
};

EncodedPrompts encode_prompts(const std::string& text_encoder_path, const std::string& tokenizer_path,
                              const std::string& prompt, const std::optional<std::string>& negative_prompt,
                              const PromptEncodingOptions& options, Backend& backend);

}  // namespace flux2
