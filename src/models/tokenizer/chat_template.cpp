#include "models/tokenizer/chat_template.h"

#include <initializer_list>

#include "core/error.h"

namespace flux2 {

const char* const kFlux2MistralSystemMessage =
    "You are an AI that reasons about image descriptions. You give structured responses focusing on object "
    "relationships, object\nattribution and actions without speculation.";

namespace {

void require_added_tokens(const Tokenizer& tok, TemplateKind kind, std::initializer_list<std::string_view> tokens) {
    for (std::string_view t : tokens)
        if (!tok.is_added_token(t))
            fail("the ", template_kind_name(kind), " template needs the token \"", t,
                 "\", which this tokenizer does not have (", tok.describe(), ")");
}

std::string remove_all(std::string text, std::string_view what) {
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at)) text.erase(at, what.size());
    return text;
}

}  // namespace

TemplateKind parse_template_kind(std::string_view name) {
    if (name == "none") return TemplateKind::none;
    if (name == "qwen3") return TemplateKind::qwen3;
    if (name == "mistral") return TemplateKind::mistral;
    fail("unknown prompt template \"", name, "\" (expected none, qwen3 or mistral)");
}

const char* template_kind_name(TemplateKind kind) {
    switch (kind) {
        case TemplateKind::none:
            return "none";
        case TemplateKind::qwen3:
            return "qwen3";
        case TemplateKind::mistral:
            return "mistral";
    }
    return "?";
}

std::string apply_chat_template(const Tokenizer& tok, TemplateKind kind, const std::string& prompt) {
    switch (kind) {
        case TemplateKind::none:
            return prompt;
        case TemplateKind::qwen3:
            require_added_tokens(tok, kind, {"<|im_start|>", "<|im_end|>", "<think>", "</think>"});
            return "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n";
        case TemplateKind::mistral: {
            const std::string& bos = tok.config().bos_token;
            check(!bos.empty() && tok.is_added_token(bos), "the mistral template needs the tokenizer's bos_token, but ",
                  bos.empty() ? "tokenizer_config.json defines none" : "\"" + bos + "\" is not an added token");
            require_added_tokens(tok, kind, {"[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "[INST]", "[/INST]"});
            // diffusers' Flux2Pipeline.format_input drops image placeholders from the prompt text.
            return bos + "[SYSTEM_PROMPT]" + kFlux2MistralSystemMessage + "[/SYSTEM_PROMPT][INST]" +
                   remove_all(prompt, "[IMG]") + "[/INST]";
        }
    }
    fail("invalid template kind ", static_cast<int>(kind));
}

std::vector<int32_t> encode_prompt_ids(const Tokenizer& tok, TemplateKind kind, const std::string& prompt, int max_len,
                                       std::vector<int32_t>* attention_mask) {
    // The processor drops add_special_tokens for text that already starts with BOS; Qwen3's post-processor adds
    // nothing. Only the raw prompt gets the post-processor's tokens.
    return tok.encode_to_length(apply_chat_template(tok, kind, prompt), kind == TemplateKind::none, max_len,
                                attention_mask);
}

}  // namespace flux2
