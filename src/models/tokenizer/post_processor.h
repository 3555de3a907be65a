#pragma once
// tokenizer.json "post_processor": the special tokens that encoding with add_special_tokens=True puts around a
// single sequence. Supported types: ByteLevel (changes offsets only), TemplateProcessing, Sequence.
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace flux2 {

class PostProcessor {
public:
    virtual ~PostProcessor() = default;
    virtual void add_special_tokens(std::vector<int32_t>& ids) const = 0;
    virtual size_t added_count() const = 0;  // how many ids add_special_tokens adds
};

// nullptr for JSON null.
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& spec, const std::string& where);

}  // namespace flux2
