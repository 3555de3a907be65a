#pragma once
// A compiled PCRE2 pattern (UTF + UCP, JIT when available) for the pre-tokenizer's "Split" patterns. Those are
// written for Oniguruma (Hugging Face's engine); the escapes whose meaning differs (\s, \S, \h, \H) are rewritten
// to Oniguruma's meaning before compiling, the rest of the Qwen3 and Tekken syntax reads the same in both.
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;

namespace flux2 {

class Regex {
public:
    explicit Regex(const std::string& pattern);  // throws flux2::Error quoting the pattern and PCRE2's message
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Appends the [begin, end) byte ranges of all non-overlapping, non-empty matches, left to right. `text` must be
    // valid UTF-8 (it is not checked again).
    void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& matches) const;

    const std::string& pattern() const { return pattern_; }

private:
    std::string pattern_;
    pcre2_real_code_8* code_ = nullptr;
};

}  // namespace flux2
