#include "models/tokenizer/utf8.h"

#include <cstdint>
#include <cstring>

namespace flux2 {

namespace {

// Scans the sequence at s[i] against the Unicode table of well-formed byte sequences (Table 3-7, which rules out
// overlongs, surrogates and values above U+10FFFF). Returns how many bytes form a valid sequence or, when `ok`
// comes back false, the length of the maximal ill-formed prefix (at least 1), which U+FFFD replaces as one unit.
size_t scan_sequence(std::string_view s, size_t i, bool& ok) {
    const auto c = static_cast<unsigned char>(s[i]);
    ok = true;
    if (c < 0x80) return 1;
    size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        ok = false;
        return 1;
    }
    size_t k = 1;
    for (; k < n && i + k < s.size(); ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < lo || b > hi) break;
        lo = 0x80;
        hi = 0xBF;
    }
    ok = k == n;
    return k;
}

}  // namespace

size_t utf8_first_invalid(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        // ASCII runs dominate prompts: skip them eight bytes at a time.
        while (i + 8 <= s.size()) {
            uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= s.size()) break;
        bool ok;
        const size_t n = scan_sequence(s, i, ok);
        if (!ok) return i;
        i += n;
    }
    return utf8_valid;
}

char32_t utf8_next(std::string_view s, size_t& i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_length(c);
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    return cp;
}

void utf8_append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        bool ok;
        const size_t n = scan_sequence(s, i, ok);
        if (ok)
            out.append(s.substr(i, n));
        else
            out += "\xEF\xBF\xBD";
        i += n;
    }
    return out;
}

}  // namespace flux2
