#pragma once
// Hyper-parameters of the Llama-style decoder FLUX.2 uses as its text encoder: Qwen3 (klein) and the text model of
// Mistral3ForConditionalGeneration (dev). From the checkpoint's config.json when there is one (flat Qwen3 config
// or Mistral3's nested "text_config"), otherwise from tensor shapes plus the family's fixed constants.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace flux2 {

enum class DecoderFamily {
    qwen3,    // RMSNorm over head_dim on q and k ("q_norm"/"k_norm") before RoPE
    mistral,  // plain Llama attention
};
const char* decoder_family_name(DecoderFamily family);  // "qwen3" / "mistral"

struct DecoderConfig {
    DecoderFamily family = DecoderFamily::qwen3;
    int64_t vocab_size = 0;
    int64_t hidden_size = 0;
    int64_t intermediate_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_attention_heads = 0;
    int64_t num_key_value_heads = 0;
    int64_t head_dim = 0;
    double rms_norm_eps = 1e-6;
    double rope_theta = 1e6;
    std::string source;  // where the values came from, for the summary line

    bool qk_norm() const { return family == DecoderFamily::qwen3; }
    int64_t q_dim() const { return num_attention_heads * head_dim; }
    int64_t kv_dim() const { return num_key_value_heads * head_dim; }

    // A transformers config.json (Qwen3Config, MistralConfig, or Mistral3Config whose "text_config" is used).
    // Reads rope_theta at the top level or under rope_parameters (transformers >= 5 writes the latter) and refuses
    // what this decoder does not implement (attention biases, RoPE scaling, an active sliding window, ...).
    static DecoderConfig from_json(const nlohmann::json& j, const std::string& origin);

    // The text encoders FLUX.2 ships with, for checkpoints without a config.json (ComfyUI single files):
    // "qwen3-4b" (klein 4B), "qwen3-8b" (klein 9B), "mistral-small-3" (dev: Mistral-Small-3.1/3.2-24B).
    static DecoderConfig preset(const std::string& name);

    // Throws naming `origin` when a value is missing or inconsistent (heads not divisible, ...).
    void validate(const std::string& origin) const;
    std::string summary() const;  // one line for the log
};

}  // namespace flux2
