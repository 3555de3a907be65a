#include "models/tokenizer/json_fields.h"

#include "core/error.h"

namespace flux2 {

namespace {

// A value for a message: short, on one line.
std::string shown(const nlohmann::json& v) {
    std::string s = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return s.size() > 60 ? s.substr(0, 60) + "..." : s;
}

const nlohmann::json& required(const nlohmann::json& object, const char* key, const std::string& where,
                               const std::string& entry) {
    check(object.is_object(), where, ": ", entry, " must be a JSON object, got ", shown(object));
    check(object.contains(key), where, ": ", entry, " has no \"", key, "\"");
    return object.at(key);
}

}  // namespace

int64_t json_int(const nlohmann::json& object, const char* key, int64_t lo, int64_t hi, const std::string& where,
                 const std::string& entry) {
    const nlohmann::json& v = required(object, key, where, entry);
    // number_unsigned above INT64_MAX and floats such as 3.5 are refused along with strings.
    const bool integer = v.is_number_integer() && (v.is_number_unsigned() ? v.get<uint64_t>() <= uint64_t(hi) : true);
    check(integer, where, ": ", entry, " \"", key, "\" must be an integer, got ", shown(v));
    const int64_t n = v.get<int64_t>();
    check(n >= lo && n <= hi, where, ": ", entry, " \"", key, "\" is ", n, ", expected ", lo, " to ", hi);
    return n;
}

std::string json_string(const nlohmann::json& object, const char* key, const std::string& where,
                        const std::string& entry) {
    const nlohmann::json& v = required(object, key, where, entry);
    check(v.is_string(), where, ": ", entry, " \"", key, "\" must be a string, got ", shown(v));
    return v.get<std::string>();
}

bool json_bool(const nlohmann::json& object, const char* key, bool fallback, const std::string& where,
               const std::string& entry) {
    if (!object.is_object() || !object.contains(key) || object.at(key).is_null()) return fallback;
    const nlohmann::json& v = object.at(key);
    check(v.is_boolean(), where, ": ", entry, " \"", key, "\" must be true or false, got ", shown(v));
    return v.get<bool>();
}

}  // namespace flux2
