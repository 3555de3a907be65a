#pragma once
// JSON parsing for files we do not trust: nlohmann keeps the last of two equal keys without a word, which would
// let a header name one tensor twice and have us read only one of them, so every object is checked for
// duplicate keys.
#include <nlohmann/json.hpp>
#include <string>

namespace flux2 {

// Parses `text`; throws Error naming `origin` on invalid JSON, a duplicate key in any object, or nesting deeper
// than `max_depth` (serializing, comparing and copying JSON values recurse, so depth must stay bounded).
nlohmann::json parse_json_strict(const char* text, size_t len, const std::string& origin, size_t max_depth = 64);
// Reads and parses a whole JSON file (a config, an index) the same way.
nlohmann::json read_json_file(const std::string& path);

}  // namespace flux2
