#include "models/tokenizer/pretokenizer.h"

#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "core/error.h"
#include "models/tokenizer/byte_level.h"
#include "models/tokenizer/regex.h"

namespace flux2 {

namespace {

// What happens to the pattern matches ("delimiters") of a Split, named as in tokenizer.json.
enum class SplitBehavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

SplitBehavior parse_behavior(const std::string& name, const std::string& where) {
    if (name == "Removed") return SplitBehavior::removed;
    if (name == "Isolated") return SplitBehavior::isolated;
    if (name == "MergedWithPrevious") return SplitBehavior::merged_with_previous;
    if (name == "MergedWithNext") return SplitBehavior::merged_with_next;
    if (name == "Contiguous") return SplitBehavior::contiguous;
    fail(where, ": Split behavior \"", name,
         "\" is unknown (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

struct Span {
    size_t begin, end;
    bool is_match;
};

// Covers [0, size) with the matches and the gaps between them, in order.
std::vector<Span> cover(size_t size, const std::vector<std::pair<size_t, size_t>>& matches, bool invert) {
    std::vector<Span> spans;
    spans.reserve(matches.size() * 2 + 1);
    size_t prev = 0;
    for (auto [b, e] : matches) {
        if (b > prev) spans.push_back({prev, b, invert});
        spans.push_back({b, e, !invert});
        prev = e;
    }
    if (prev < size) spans.push_back({prev, size, invert});
    return spans;
}

// The grouping rules of Hugging Face tokenizers' NormalizedString::split, span for span.
std::vector<Span> apply_behavior(const std::vector<Span>& spans, SplitBehavior behavior) {
    std::vector<Span> out;
    out.reserve(spans.size());
    bool previous_match = false;
    switch (behavior) {
        case SplitBehavior::isolated:
            return spans;
        case SplitBehavior::removed:
            for (const Span& s : spans)
                if (!s.is_match) out.push_back(s);
            return out;
        case SplitBehavior::merged_with_previous:
            for (const Span& s : spans) {
                if (s.is_match && !previous_match && !out.empty())
                    out.back().end = s.end;
                else
                    out.push_back(s);
                previous_match = s.is_match;
            }
            return out;
        case SplitBehavior::merged_with_next:
            for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
                if (it->is_match && !previous_match && !out.empty())
                    out.back().begin = it->begin;
                else
                    out.push_back(*it);
                previous_match = it->is_match;
            }
            return {out.rbegin(), out.rend()};
        case SplitBehavior::contiguous:
            for (size_t i = 0; i < spans.size(); ++i) {
                if (i > 0 && spans[i].is_match == previous_match)
                    out.back().end = spans[i].end;
                else
                    out.push_back(spans[i]);
                previous_match = spans[i].is_match;
            }
            return out;
    }
    return out;
}

class SplitPreTokenizer final : public PreTokenizer {
public:
    SplitPreTokenizer(const nlohmann::json& spec, const std::string& where) {
        check(spec.contains("pattern") && spec.at("pattern").is_object(), where,
              ": Split pre-tokenizer needs a \"pattern\" object");
        const auto& pattern = spec.at("pattern");
        if (pattern.contains("Regex")) {
            try {
                regex_ = std::make_unique<Regex>(pattern.at("Regex").get<std::string>());
            } catch (const Error& e) {
                fail(where, ": Split pre-tokenizer: ", e.what());
            }
        } else if (pattern.contains("String")) {
            literal_ = pattern.at("String").get<std::string>();
            check(!literal_.empty(), where, ": Split pre-tokenizer has an empty String pattern");
        } else {
            fail(where, ": Split pattern must hold \"Regex\" or \"String\"");
        }
        behavior_ = parse_behavior(spec.value("behavior", std::string("Isolated")), where);
        invert_ = spec.value("invert", false);
    }

    void split(std::vector<std::string>& pieces) const override {
        std::vector<std::string> out;
        out.reserve(pieces.size() * 8);
        std::vector<std::pair<size_t, size_t>> matches;
        for (const std::string& piece : pieces) {
            matches.clear();
            find(piece, matches);
            for (const Span& s : apply_behavior(cover(piece.size(), matches, invert_), behavior_))
                if (s.end > s.begin) out.emplace_back(piece, s.begin, s.end - s.begin);
        }
        pieces = std::move(out);
    }

private:
    void find(std::string_view text, std::vector<std::pair<size_t, size_t>>& matches) const {
        if (regex_) return regex_->find_all(text, matches);
        for (size_t at = text.find(literal_); at != std::string_view::npos; at = text.find(literal_, at)) {
            matches.emplace_back(at, at + literal_.size());
            at += literal_.size();
        }
    }

    std::unique_ptr<Regex> regex_;
    std::string literal_;
    SplitBehavior behavior_ = SplitBehavior::isolated;
    bool invert_ = false;
};

// Maps bytes to GPT-2's printable characters, optionally after a space prefix and GPT-2's own word split.
class ByteLevelPreTokenizer final : public PreTokenizer {
public:
    explicit ByteLevelPreTokenizer(const nlohmann::json& spec)
        : add_prefix_space_(spec.value("add_prefix_space", true)) {
        // trim_offsets only changes offsets, which this tokenizer does not report.
        if (spec.value("use_regex", true))
            gpt2_split_ = std::make_unique<Regex>(
                "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
    }

    void split(std::vector<std::string>& pieces) const override {
        std::vector<std::string> out;
        out.reserve(pieces.size());
        std::vector<std::pair<size_t, size_t>> matches;
        std::string mapped;
        for (std::string& piece : pieces) {
            if (add_prefix_space_ && (piece.empty() || piece[0] != ' ')) piece.insert(piece.begin(), ' ');
            std::vector<Span> spans{{0, piece.size(), false}};
            if (gpt2_split_) {
                matches.clear();
                gpt2_split_->find_all(piece, matches);
                spans = cover(piece.size(), matches, false);
            }
            for (const Span& s : spans) {
                if (s.end == s.begin) continue;
                byte_level_encode(std::string_view(piece).substr(s.begin, s.end - s.begin), mapped);
                out.push_back(mapped);
            }
        }
        pieces = std::move(out);
    }

private:
    bool add_prefix_space_;
    std::unique_ptr<Regex> gpt2_split_;
};

class SequencePreTokenizer final : public PreTokenizer {
public:
    explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}

    void split(std::vector<std::string>& pieces) const override {
        for (const auto& p : parts_) p->split(pieces);
    }

private:
    std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, const std::string& where) {
    if (spec.is_null()) return nullptr;
    check(spec.is_object() && spec.contains("type"), where, ": pre_tokenizer must be an object with a \"type\"");
    const std::string type = spec.at("type").get<std::string>();
    if (type == "Split") return std::make_unique<SplitPreTokenizer>(spec, where);
    if (type == "ByteLevel") return std::make_unique<ByteLevelPreTokenizer>(spec);
    if (type == "Sequence") {
        check(spec.contains("pretokenizers") && spec.at("pretokenizers").is_array(), where,
              ": Sequence pre-tokenizer needs a \"pretokenizers\" array");
        std::vector<std::unique_ptr<PreTokenizer>> parts;
        for (const auto& sub : spec.at("pretokenizers")) {
            auto p = make_pre_tokenizer(sub, where);
            if (p) parts.push_back(std::move(p));
        }
        return std::make_unique<SequencePreTokenizer>(std::move(parts));
    }
    fail(where, ": pre_tokenizer type \"", type, "\" is not supported (supported: Split, ByteLevel, Sequence)");
}

}  // namespace flux2
