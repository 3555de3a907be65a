#include "models/tokenizer/added_vocabulary.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/tokenizer/json_fields.h"
#include "models/tokenizer/limits.h"
#include "models/tokenizer/utf8.h"

namespace flux2 {

namespace {

// Rust regex's \w, which Hugging Face uses for single_word: alphabetic, marks, decimal digits, connector
// punctuation, join controls.
bool is_word_char(char32_t c) {
    if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) || u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL)) return true;
    const int8_t t = u_charType(c);
    return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
           t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

// The code point that ends at byte `end` (valid UTF-8, end > 0).
char32_t last_char(std::string_view text, size_t end) {
    size_t b = end - 1;
    while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
    return utf8_next(text, b);
}

}  // namespace

void AddedVocabulary::Trie::insert(std::string_view s, int32_t token) {
    int32_t node = 0;
    for (unsigned char c : s) {
        int32_t child = -1;
        for (const auto& [byte, index] : nodes[node].children)
            if (byte == c) child = index;
        if (child < 0) {
            child = static_cast<int32_t>(nodes.size());
            nodes[node].children.emplace_back(c, child);
            nodes.emplace_back();
        }
        node = child;
    }
    nodes[node].token = token;
}

std::pair<size_t, int32_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t at) const {
    std::pair<size_t, int32_t> best{0, -1};
    int32_t node = 0;
    for (size_t i = at; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        const auto& ch = nodes[node].children;
        auto it = std::find_if(ch.begin(), ch.end(), [c](const auto& e) { return e.first == c; });
        if (it == ch.end()) break;
        node = it->second;
        if (nodes[node].token >= 0) best = {i + 1 - at, nodes[node].token};
    }
    return best;
}

AddedVocabulary::AddedVocabulary(const nlohmann::json& spec, const std::string& where) {
    if (spec.is_null()) return;
    check(spec.is_array(), where, ": \"added_tokens\" must be an array");
    for (size_t i = 0; i < spec.size(); ++i) {
        const nlohmann::json& t = spec[i];
        const std::string entry = str("added_tokens[", i, "]");
        AddedToken tok;
        tok.id = static_cast<int32_t>(json_int(t, "id", 0, kMaxTokenId, where, entry));
        tok.content = json_string(t, "content", where, entry);
        tok.special = json_bool(t, "special", false, where, entry);
        tok.lstrip = json_bool(t, "lstrip", false, where, entry);
        tok.rstrip = json_bool(t, "rstrip", false, where, entry);
        tok.single_word = json_bool(t, "single_word", false, where, entry);
        tok.normalized = json_bool(t, "normalized", !tok.special, where, entry);
        check(!tok.content.empty() && utf8_first_invalid(tok.content) == utf8_valid, where, ": added token ", tok.id,
              " has empty or invalid UTF-8 content");
        check(tok.id >= 0, where, ": added token \"", tok.content, "\" has negative id ", tok.id);
        check(!by_id_.count(tok.id), where, ": added token id ", tok.id, " appears twice");
        // A later entry with the same content wins, as in Hugging Face tokenizers.
        const auto index = static_cast<int32_t>(tokens_.size());
        by_id_[tok.id] = index;
        by_content_[tok.content] = index;
        (tok.normalized ? normalized_trie_ : raw_trie_).insert(tok.content, index);
        tokens_.push_back(std::move(tok));
    }
}

const AddedToken* AddedVocabulary::find(std::string_view content) const {
    auto it = by_content_.find(std::string(content));
    return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedVocabulary::find(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

void AddedVocabulary::split(std::string_view text, bool normalized, std::vector<TextSegment>& out) const {
    const Trie& trie = normalized ? normalized_trie_ : raw_trie_;
    if (trie.nodes.size() == 1) {
        if (!text.empty()) out.push_back({0, text.size(), -1});
        return;
    }
    size_t done = 0;  // end of the last emitted segment
    size_t at = 0;
    while (at < text.size()) {
        const auto [len, index] = trie.longest_at(text, at);
        if (index < 0) {
            ++at;
            continue;
        }
        const AddedToken& tok = tokens_[index];
        size_t begin = at, end = at + len;
        at = end;  // a rejected match is skipped whole, as the Aho-Corasick iterator does
        if (tok.single_word) {
            const bool word_before = begin > 0 && is_word_char(last_char(text, begin));
            size_t k = end;
            const bool word_after = end < text.size() && is_word_char(utf8_next(text, k));
            if (word_before || word_after) continue;
        }
        if (tok.lstrip) {
            size_t b = begin;
            while (b > done) {
                const char32_t c = last_char(text, b);
                if (!u_isUWhiteSpace(c)) break;
                size_t w = b - 1;
                while (w > 0 && (static_cast<unsigned char>(text[w]) & 0xC0) == 0x80) --w;
                b = w;
            }
            begin = b;
        }
        if (tok.rstrip) {
            while (end < text.size()) {
                size_t k = end;
                if (!u_isUWhiteSpace(utf8_next(text, k))) break;
                end = k;
            }
            at = end;
        }
        if (begin > done) out.push_back({done, begin, -1});
        out.push_back({begin, end, tok.id});
        done = end;
    }
    if (done < text.size()) out.push_back({done, text.size(), -1});
}

}  // namespace flux2
