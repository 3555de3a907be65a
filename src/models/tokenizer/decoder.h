#pragma once
// tokenizer.json "decoder": turns tokens back into text (for debugging and the CLI; FLUX.2 never decodes).
// Supported types: ByteLevel, Sequence.
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace flux2 {

class Decoder {
public:
    virtual ~Decoder() = default;
    // Hugging Face's decode_chain: rewrites the token strings; the caller concatenates the result.
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for JSON null (tokens are then joined with spaces, as Hugging Face does).
std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& where);

}  // namespace flux2
