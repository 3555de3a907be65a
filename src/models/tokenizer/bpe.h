#pragma once
// The "BPE" model of tokenizer.json: a vocabulary, ranked merges, optional unk token, ignore_merges, and a cache of
// already encoded pieces (prompts repeat the same words, so most pieces are found there).
#include <cstdint>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace flux2 {

class BpeModel {
public:
    // `spec` is the tokenizer.json "model" object; `where` names the file for error messages.
    BpeModel(const nlohmann::json& spec, const std::string& where);

    // Appends the ids of one pre-tokenized piece (valid UTF-8, non-empty).
    void encode(std::string_view piece, std::vector<int32_t>& out) const;

    int32_t token_to_id(std::string_view token) const;                              // -1 if absent
    const std::string* id_to_token(int32_t id) const;                               // nullptr if absent
    int32_t id_bound() const { return static_cast<int32_t>(id_to_token_.size()); }  // 1 + largest id
    size_t vocab_size() const { return vocab_.size(); }
    size_t merge_count() const { return merges_.size(); }

    void clear_cache() const;

private:
    struct StringHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct Merge {
        int32_t rank;
        int32_t id;  // the merged token
    };
    static uint64_t pair_key(int32_t a, int32_t b) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    }

    void merge_word(std::string_view piece, std::vector<int32_t>& out) const;

    std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
    std::vector<std::string> id_to_token_;
    std::unordered_map<uint64_t, Merge> merges_;
    int32_t unk_id_ = -1;
    bool fuse_unk_ = false;
    bool ignore_merges_ = false;

    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace flux2
