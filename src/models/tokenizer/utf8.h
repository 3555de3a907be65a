#pragma once
// UTF-8 helpers for the tokenizer. Text is validated once on entry; everything after that may assume valid UTF-8.
#include <cstddef>
#include <string>
#include <string_view>

namespace flux2 {

inline constexpr size_t utf8_valid = static_cast<size_t>(-1);

// Byte offset of the first invalid sequence (bad lead byte, truncated or overlong sequence, surrogate, code point
// above U+10FFFF), or utf8_valid.
size_t utf8_first_invalid(std::string_view s);

// Length of the sequence that starts with `lead` (1 for continuation bytes, so loops always advance).
inline size_t utf8_length(unsigned char lead) {
    if (lead < 0xC0) return 1;
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    return 4;
}

// Decodes the code point at s[i] (valid UTF-8 assumed) and advances i past it.
char32_t utf8_next(std::string_view s, size_t& i);

void utf8_append(std::string& out, char32_t cp);

// Replaces every invalid sequence by U+FFFD, as Rust's String::from_utf8_lossy does (decoded text for display).
std::string utf8_lossy(std::string_view s);

}  // namespace flux2
