#pragma once
// The two prompt templates FLUX.2 puts around a prompt before its text encoder, written out by hand (no Jinja):
// what the tokenizers' own chat templates render for one user turn (FLUX2_SPEC.md 2.2 and 4).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "models/tokenizer/tokenizer.h"

namespace flux2 {

enum class TemplateKind {
    none,     // the prompt as is, post-processor specials added (transformers' default add_special_tokens=True)
    qwen3,    // klein: one user turn, generation prompt, thinking disabled (an empty <think> block)
    mistral,  // dev: BFL's system message and one user turn, no generation prompt
};

TemplateKind parse_template_kind(std::string_view name);  // "none", "qwen3", "mistral"
const char* template_kind_name(TemplateKind kind);

// FLUX.2 [dev]'s system message (BFL / diffusers system_messages.py); note the newline after "object".
extern const char* const kFlux2MistralSystemMessage;

// The templated text:
//   qwen3:   <|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n
//   mistral: {bos_token}[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT][INST]{prompt without "[IMG]"}[/INST]
// The BOS string comes from tokenizer_config.json; the other markers are literals of the model's Jinja template
// and must be added tokens of `tok` (else flux2::Error: wrong tokenizer for the template).
std::string apply_chat_template(const Tokenizer& tok, TemplateKind kind, const std::string& prompt);

// Exactly max_len ids of the templated prompt, truncated and padded as the FLUX.2 pipelines tokenize it
// (transformers, truncation=True, padding="max_length"; sides and pad token from tokenizer_config.json). The
// templates carry their own special tokens, so no post-processor tokens are added for qwen3 / mistral.
std::vector<int32_t> encode_prompt_ids(const Tokenizer& tok, TemplateKind kind, const std::string& prompt, int max_len,
                                       std::vector<int32_t>* attention_mask);

}  // namespace flux2
