#include "models/tokenizer/tokenizer_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gzip_file.h"
#include "models/tokenizer/json_fields.h"
#include "models/tokenizer/limits.h"

namespace flux2 {

namespace {

// Special tokens appear as plain strings or, in files saved by older transformers, as serialized AddedToken
// objects {"__type": "AddedToken", "content": ...}.
std::string token_string(const nlohmann::json& spec, const char* key, const std::string& where) {
    if (!spec.contains(key) || spec.at(key).is_null()) return {};
    const auto& v = spec.at(key);
    if (v.is_string()) return v.get<std::string>();
    check(v.is_object() && v.contains("content") && v.at("content").is_string(), where, ": \"", key,
          "\" is neither a string nor an object with \"content\"");
    return v.at("content").get<std::string>();
}

Side parse_side(const nlohmann::json& spec, const char* key, const std::string& where) {
    if (!spec.contains(key) || spec.at(key).is_null()) return Side::right;
    const std::string v = json_string(spec, key, where, "the config");
    if (v == "left") return Side::left;
    if (v == "right") return Side::right;
    fail(where, ": \"", key, "\" is \"", v, "\", expected \"left\" or \"right\"");
}

}  // namespace

const char* side_name(Side side) { return side == Side::left ? "left" : "right"; }

TokenizerConfig parse_tokenizer_config(const nlohmann::json& spec, const std::string& where) {
    check(spec.is_object(), where, ": tokenizer config must be a JSON object");
    TokenizerConfig c;
    c.bos_token = token_string(spec, "bos_token", where);
    c.eos_token = token_string(spec, "eos_token", where);
    c.pad_token = token_string(spec, "pad_token", where);
    c.unk_token = token_string(spec, "unk_token", where);
    c.padding_side = parse_side(spec, "padding_side", where);
    c.truncation_side = parse_side(spec, "truncation_side", where);
    if (spec.contains("model_max_length") && spec.at("model_max_length").is_number()) {
        const double n = spec.at("model_max_length").get<double>();
        c.model_max_length = n > 0 && n < 1e15 ? static_cast<int64_t>(n) : 0;
    }
    c.source = where;
    return c;
}

TokenizerConfig read_tokenizer_config(const std::string& path) {
    const std::string text = read_file_maybe_gzip(path, kMaxTokenizerConfigBytes);
    nlohmann::json spec;
    try {
        spec = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail(path, ": invalid JSON: ", e.what());
    }
    return parse_tokenizer_config(spec, path);
}

}  // namespace flux2
