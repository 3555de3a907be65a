#pragma once
// A native reader of Hugging Face tokenizer.json files, enough for FLUX.2's text encoders: Qwen3 (klein) and
// Mistral-Small-3.1 Tekken (dev). Encoding follows Hugging Face tokenizers step for step: added tokens are cut out
// of the raw text, the rest is normalized, pre-tokenized and BPE-encoded; post-processor specials are added only
// on request. See docs/TOKENIZER.md for what is supported.
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "models/tokenizer/tokenizer_config.h"

namespace flux2 {

class Tokenizer {
public:
    // `path`: a folder with tokenizer.json or tokenizer.json.gz (and, normally, tokenizer_config.json), or the
    // tokenizer.json[.gz] file itself, in which case tokenizer_config.json is looked for beside it.
    static Tokenizer load(const std::string& path);
    // From JSON text; `config_json` may be empty (transformers' defaults). `where` and `config_where` name the two
    // sources in errors.
    static Tokenizer from_json(const std::string& tokenizer_json, const std::string& config_json,
                               const std::string& where, const std::string& config_where = "tokenizer_config.json");

    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    ~Tokenizer();

    // Ids of `text` (valid UTF-8, else flux2::Error naming the byte offset). add_special_tokens applies the
    // post-processor (e.g. Mistral's BOS), like Hugging Face's add_special_tokens=True. Safe to call from several
    // threads at once (the BPE cache has a lock).
    std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;

    // transformers' tokenizer(text, truncation=True, padding="max_length", max_length=max_length): exactly
    // max_length ids (1 to kMaxEncodeLength of limits.h), cut on the configured truncation side and padded with the pad
    // token on the configured padding side. attention_mask (optional) gets 1 for real tokens and 0 for padding.
    std::vector<int32_t> encode_to_length(std::string_view text, bool add_special_tokens, int max_length,
                                          std::vector<int32_t>* attention_mask = nullptr) const;

    std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

    int32_t token_to_id(std::string_view token) const;  // added tokens first, then the BPE vocab; -1 if absent
    std::string id_to_token(int32_t id) const;          // throws for an unknown id
    bool is_added_token(std::string_view token) const;  // matched as a whole before BPE
    int32_t vocab_size() const;                         // 1 + the largest id
    int32_t pad_id() const;                             // the config's pad_token; throws when there is none
    const TokenizerConfig& config() const;
    std::string describe() const;  // one line: source, vocab, merges, added tokens, normalizer, padding

    void clear_cache() const;  // drops the BPE cache (benchmarks measure the cold path with it)

private:
    struct Impl;
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    static void read_spec(Impl& impl, const nlohmann::json& spec, const std::string& where);
    std::unique_ptr<Impl> impl_;
};

}  // namespace flux2
