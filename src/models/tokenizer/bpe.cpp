#include "models/tokenizer/bpe.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/error.h"
#include "models/tokenizer/limits.h"
#include "models/tokenizer/utf8.h"

namespace flux2 {

namespace {

// Pieces longer than this are rare (long runs of one character) and would only crowd the cache.
constexpr size_t kMaxCachedBytes = 256;
constexpr size_t kCacheCapacity = 16384;

std::string optional_string(const nlohmann::json& spec, const char* key) {
    if (!spec.contains(key) || spec.at(key).is_null()) return {};
    return spec.at(key).get<std::string>();
}

}  // namespace

BpeModel::BpeModel(const nlohmann::json& spec, const std::string& where) {
    check(spec.is_object() && spec.value("type", std::string()) == "BPE", where, ": model type \"",
          spec.is_object() ? spec.value("type", std::string("(none)")) : std::string("(not an object)"),
          "\" is not supported (only BPE)");
    const auto& dropout = spec.contains("dropout") ? spec.at("dropout") : nlohmann::json();
    check(dropout.is_null() || dropout.get<double>() == 0.0, where,
          ": BPE dropout makes encoding random and is not supported");
    check(optional_string(spec, "continuing_subword_prefix").empty() &&
              optional_string(spec, "end_of_word_suffix").empty(),
          where, ": BPE continuing_subword_prefix / end_of_word_suffix are not supported");
    check(!spec.value("byte_fallback", false), where,
          ": BPE byte_fallback (SentencePiece-style <0xNN> tokens) is not supported; FLUX.2's Qwen3 and Mistral "
          "tokenizers are byte-level");
    fuse_unk_ = spec.value("fuse_unk", false);
    ignore_merges_ = spec.value("ignore_merges", false);

    check(spec.contains("vocab") && spec.at("vocab").is_object(), where, ": BPE model has no \"vocab\" object");
    const auto& vocab = spec.at("vocab");
    vocab_.reserve(vocab.size());
    // The id -> token table is as long as the largest id: ids far beyond the number of tokens would make a tiny
    // file allocate gigabytes, and real vocabularies are dense.
    const int64_t max_id = std::min<int64_t>(kMaxTokenId, 2 * static_cast<int64_t>(vocab.size()) + 65536);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const nlohmann::json& v = it.value();
        check(v.is_number_integer(), where, ": model.vocab[\"", it.key(), "\"] must be an integer id, got ",
              v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
        const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : v.get<int64_t>();
        check(id >= 0 && id <= max_id, where, ": model.vocab[\"", it.key(), "\"] has id ", v.dump(), ", expected 0 to ",
              max_id, " (", vocab.size(), " tokens)");
        if (static_cast<size_t>(id) >= id_to_token_.size()) id_to_token_.resize(id + 1);
        check(id_to_token_[id].empty(), where, ": vocab id ", id, " is used by both \"", id_to_token_[id], "\" and \"",
              it.key(), "\"");
        id_to_token_[id] = it.key();
        vocab_.emplace(it.key(), static_cast<int32_t>(id));
    }

    check(spec.contains("merges") && spec.at("merges").is_array(), where, ": BPE model has no \"merges\" array");
    const auto& merges = spec.at("merges");
    merges_.reserve(merges.size());
    std::string left, right;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const auto& m = merges[rank];
        // Two spellings exist: "a b" (older files, tokens never contain a space) and ["a", "b"].
        if (m.is_string()) {
            const std::string line = m.get<std::string>();
            const size_t sp = line.find(' ');
            check(sp != std::string::npos && line.find(' ', sp + 1) == std::string::npos, where, ": merge #", rank,
                  " \"", line, "\" is not two tokens separated by one space");
            left = line.substr(0, sp);
            right = line.substr(sp + 1);
        } else {
            check(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), where, ": merge #", rank,
                  " is neither \"a b\" nor [\"a\", \"b\"]");
            left = m[0].get<std::string>();
            right = m[1].get<std::string>();
        }
        const int32_t a = token_to_id(left), b = token_to_id(right), ab = token_to_id(left + right);
        check(a >= 0 && b >= 0 && ab >= 0, where, ": merge #", rank, " (\"", left, "\", \"", right,
              "\") uses a token that is not in the vocab");
        // A repeated pair keeps its last rank, as Hugging Face tokenizers' hash map does.
        merges_[pair_key(a, b)] = Merge{static_cast<int32_t>(rank), ab};
    }

    const std::string unk = optional_string(spec, "unk_token");
    if (!unk.empty()) {
        unk_id_ = token_to_id(unk);
        check(unk_id_ >= 0, where, ": unk_token \"", unk, "\" is not in the vocab");
    }
}

int32_t BpeModel::token_to_id(std::string_view token) const {
    auto it = vocab_.find(token);
    return it == vocab_.end() ? -1 : it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
    if (id < 0 || id >= id_bound() || id_to_token_[id].empty()) return nullptr;
    return &id_to_token_[id];
}

void BpeModel::clear_cache() const {
    std::lock_guard lock(cache_mutex_);
    cache_.clear();
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) const {
    if (ignore_merges_) {
        // Tiktoken-derived vocabularies (Tekken) take a piece that is itself a token as is.
        if (int32_t id = token_to_id(piece); id >= 0) {
            out.push_back(id);
            return;
        }
    }
    const bool cacheable = piece.size() <= kMaxCachedBytes;
    if (cacheable) {
        std::lock_guard lock(cache_mutex_);
        if (auto it = cache_.find(piece); it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t first = out.size();
    merge_word(piece, out);
    if (cacheable) {
        std::lock_guard lock(cache_mutex_);
        if (cache_.size() < kCacheCapacity) cache_.emplace(piece, std::vector<int32_t>(out.begin() + first, out.end()));
    }
}

// Starts from one symbol per character and applies the lowest-ranked applicable merge first (leftmost on ties),
// one merge at a time, exactly as Hugging Face tokenizers' Word::merge_all does; stale queue entries are skipped.
void BpeModel::merge_word(std::string_view piece, std::vector<int32_t>& out) const {
    struct Symbol {
        int32_t id;
        int32_t prev, next;
        bool alive;
    };
    std::vector<Symbol> symbols;
    symbols.reserve(piece.size());
    for (size_t i = 0; i < piece.size();) {
        const size_t n = utf8_length(static_cast<unsigned char>(piece[i]));
        int32_t id = token_to_id(piece.substr(i, n));
        if (id < 0) {
            size_t at = i;
            const char32_t cp = utf8_next(piece, at);
            check(unk_id_ >= 0, "character U+", std::hex, static_cast<uint32_t>(cp), std::dec,
                  " is not in the BPE vocab and the model has no unk_token");
            if (fuse_unk_ && !symbols.empty() && symbols.back().id == unk_id_) {
                i += n;
                continue;
            }
            id = unk_id_;
        }
        const auto k = static_cast<int32_t>(symbols.size());
        symbols.push_back({id, k - 1, -1, true});
        if (k > 0) symbols[k - 1].next = k;
        i += n;
    }

    struct Candidate {
        int32_t rank, pos, id;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    const auto consider = [&](int32_t pos) {
        const int32_t next = symbols[pos].next;
        if (next < 0) return;
        auto it = merges_.find(pair_key(symbols[pos].id, symbols[next].id));
        if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.id});
    };
    for (int32_t p = 0; p + 1 < static_cast<int32_t>(symbols.size()); ++p) consider(p);

    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = symbols[top.pos];
        if (!left.alive || left.next < 0) continue;
        Symbol& right = symbols[left.next];
        auto it = merges_.find(pair_key(left.id, right.id));
        if (it == merges_.end() || it->second.id != top.id) continue;
        left.id = top.id;
        right.alive = false;
        left.next = right.next;
        if (left.next >= 0) symbols[left.next].prev = top.pos;
        if (left.prev >= 0) consider(left.prev);
        consider(top.pos);
    }
    for (int32_t p = symbols.empty() ? -1 : 0; p >= 0; p = symbols[p].next) out.push_back(symbols[p].id);
}

}  // namespace flux2
