#pragma once
// Typed reads of tokenizer JSON fields. nlohmann's own get<T>() throws a type_error that names neither the file nor
// the key (and ends as an internal error at the command line); these fail with `where` (the file), the entry and
// the key, what was expected and what the file holds.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace flux2 {

// `object[key]` as an integer in [lo, hi]; the key must be present. `entry` names the object in messages
// ("added token #3").
int64_t json_int(const nlohmann::json& object, const char* key, int64_t lo, int64_t hi, const std::string& where,
                 const std::string& entry);
// `object[key]` as a string; the key must be present.
std::string json_string(const nlohmann::json& object, const char* key, const std::string& where,
                        const std::string& entry);
// `object[key]` as a bool, `fallback` when absent or null.
bool json_bool(const nlohmann::json& object, const char* key, bool fallback, const std::string& where,
               const std::string& entry);

}  // namespace flux2
