#pragma once
// Shared loading for the tokenizer tests: each real tokenizer is parsed once per test binary.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "models/tokenizer/tokenizer.h"
#include "test_util.h"

namespace flux2::test {

inline nlohmann::json read_json(const std::string& name) {
    std::ifstream in(data_path(name));
    std::stringstream ss;
    ss << in.rdbuf();
    return nlohmann::json::parse(ss.str());
}

inline const Tokenizer& qwen3_tokenizer() {
    static const Tokenizer tok = Tokenizer::load(data_path("qwen3-tokenizer"));
    return tok;
}

// Mistral Tekken structure (see make_tokenizer_refs.py): small vocab, real special-token layout.
inline const Tokenizer& mistral_tokenizer() {
    static const Tokenizer tok = Tokenizer::load(data_path("mistral-tekken-tokenizer"));
    return tok;
}

inline const Tokenizer& tokenizer_named(const std::string& name) {
    return name == "qwen3" ? qwen3_tokenizer() : mistral_tokenizer();
}

inline const nlohmann::json& refs() {
    static const nlohmann::json r = read_json("tokenizer-refs.json");
    return r;
}

}  // namespace flux2::test
