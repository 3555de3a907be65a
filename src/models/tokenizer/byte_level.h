#pragma once
// GPT-2's reversible byte <-> character mapping ("ByteLevel" in tokenizer.json). Printable Latin-1 bytes stand for
// themselves; the other 68 bytes (controls, space, 0x7F-0xA0, soft hyphen) take the code points U+0100 onwards in
// byte order, so every byte string becomes printable text that a BPE vocabulary can hold.
#include <string>
#include <string_view>

namespace flux2 {

// UTF-8 text of the character that stands for byte b.
const std::string& byte_level_char(unsigned char b);

// The byte that code point cp stands for, or -1 when cp is not part of the mapping.
int byte_level_byte(char32_t cp);

// Maps every byte of `text` to its character.
void byte_level_encode(std::string_view text, std::string& out);

}  // namespace flux2
