#pragma once
// tokenizer.json "added_tokens": strings matched in the text before any normalization or BPE, each becoming one id.
// Matching follows Hugging Face tokenizers' AddedVocabulary: leftmost-longest, with the lstrip / rstrip /
// single_word options, tokens with normalized=false matched in the raw text and normalized=true ones in the
// normalized text. Like the Hugging Face default (split_special_tokens=False), special-token text typed inside a
// prompt ("<|im_start|>") becomes the special id.
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flux2 {

struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false;
    bool lstrip = false;       // the match also takes the whitespace before it
    bool rstrip = false;       // ... and after it
    bool single_word = false;  // only matches when not inside a word
    bool normalized = false;   // matched in normalized text (true) or raw text (false)
};

// A stretch of text: an added token (id >= 0) or plain text to normalize and tokenize (id < 0).
struct TextSegment {
    size_t begin, end;
    int32_t id;
};

class AddedVocabulary {
public:
    AddedVocabulary() = default;
    // `spec` is the tokenizer.json "added_tokens" array.
    AddedVocabulary(const nlohmann::json& spec, const std::string& where);

    // Covers `text` with segments, matching the tokens whose `normalized` flag equals `normalized`.
    void split(std::string_view text, bool normalized, std::vector<TextSegment>& out) const;

    bool has_normalized_tokens() const { return normalized_trie_.nodes.size() > 1; }
    const AddedToken* find(std::string_view content) const;
    const AddedToken* find(int32_t id) const;
    const std::vector<AddedToken>& tokens() const { return tokens_; }

private:
    // A byte trie; `token` is the index into tokens_ of the string ending at the node, or -1.
    struct Trie {
        struct Node {
            std::vector<std::pair<unsigned char, int32_t>> children;
            int32_t token = -1;
        };
        std::vector<Node> nodes{Node{}};
        void insert(std::string_view s, int32_t token);
        // Length and token of the longest entry that starts at text[at], or {0, -1}.
        std::pair<size_t, int32_t> longest_at(std::string_view text, size_t at) const;
    };

    std::vector<AddedToken> tokens_;
    std::unordered_map<int32_t, size_t> by_id_;
    std::unordered_map<std::string, size_t> by_content_;
    Trie raw_trie_, normalized_trie_;
};

}  // namespace flux2
