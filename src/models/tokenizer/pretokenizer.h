#pragma once
// tokenizer.json "pre_tokenizer": cuts text into the pieces that the BPE model encodes independently.
// Supported types: Split (regex or literal pattern, all five behaviours, invert), ByteLevel, Sequence.
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace flux2 {

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    // Replaces every piece by its sub-pieces, in order. Empty pieces are dropped. Pieces are valid UTF-8.
    virtual void split(std::vector<std::string>& pieces) const = 0;
};

// Builds the pre-tokenizer described by `spec`; nullptr for JSON null. `where` names the file for errors.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& spec, const std::string& where);

}  // namespace flux2
