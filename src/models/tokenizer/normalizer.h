#pragma once
// tokenizer.json "normalizer": Unicode normalization forms and Sequence. Applied to the text between added tokens
// (and never to added tokens whose "normalized" flag is false), as Hugging Face tokenizers does.
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace flux2 {

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void normalize(std::string& text) const = 0;
};

// Builds the normalizer described by `spec` (a tokenizer.json "normalizer" object); nullptr for JSON null.
// Supported types: NFC, NFD, NFKC, NFKD, Sequence. `where` names the file for error messages.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& where);

}  // namespace flux2
