#include "models/tokenizer/byte_level.h"

#include <array>

#include "models/tokenizer/utf8.h"

namespace flux2 {

namespace {

struct ByteLevelTables {
    std::array<std::string, 256> chars;
    std::array<int, 512> bytes;  // indexed by code point; every mapped code point is below U+0144

    ByteLevelTables() {
        bytes.fill(-1);
        const auto printable = [](int b) { return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174; };
        int next = 256;
        for (int b = 0; b < 256; ++b) {
            const int cp = printable(b) ? b : next++;
            utf8_append(chars[b], static_cast<char32_t>(cp));
            bytes[cp] = b;
        }
    }
};

const ByteLevelTables& tables() {
    static const ByteLevelTables t;
    return t;
}

}  // namespace

const std::string& byte_level_char(unsigned char b) { return tables().chars[b]; }

int byte_level_byte(char32_t cp) { return cp < tables().bytes.size() ? tables().bytes[cp] : -1; }

void byte_level_encode(std::string_view text, std::string& out) {
    const auto& chars = tables().chars;
    out.clear();
    out.reserve(text.size() * 2);
    for (unsigned char b : text) out += chars[b];
}

}  // namespace flux2
