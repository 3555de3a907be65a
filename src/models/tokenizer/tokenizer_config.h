#pragma once
// What tokenizer_config.json (the transformers side of a Hugging Face tokenizer) says about special tokens,
// padding and truncation. Missing keys take transformers' defaults.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace flux2 {

enum class Side { left, right };
const char* side_name(Side side);

struct TokenizerConfig {
    std::string bos_token, eos_token, pad_token, unk_token;  // empty when the config has none
    Side padding_side = Side::right;
    Side truncation_side = Side::right;
    int64_t model_max_length = 0;  // 0 when absent or "unlimited" (transformers writes 1e30 for that)
    std::string source;            // the file read, empty when there was none
};

TokenizerConfig parse_tokenizer_config(const nlohmann::json& spec, const std::string& where);
TokenizerConfig read_tokenizer_config(const std::string& path);

}  // namespace flux2
