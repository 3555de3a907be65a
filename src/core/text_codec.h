#pragma once
// Byte-level text checks and codecs shared by the file formats and the server: UTF-8 validation and base64.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace flux2 {

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool is_valid_utf8(std::string_view s);

// Standard alphabet with '=' padding.
std::string base64_encode(const uint8_t* data, size_t size);
// Strict: standard alphabet, padded to a multiple of 4, no whitespace; nullopt on anything else.
std::optional<std::vector<uint8_t>> base64_decode(std::string_view text);

}  // namespace flux2
