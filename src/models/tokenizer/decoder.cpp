#include "models/tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/tokenizer/byte_level.h"
#include "models/tokenizer/utf8.h"

namespace flux2 {

namespace {

class ByteLevelDecoder final : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string bytes;
        std::string mapped;
        for (const std::string& t : tokens) {
            // A token with a character outside the byte mapping (an added token such as "中文") is taken as UTF-8.
            mapped.clear();
            bool all_mapped = true;
            for (size_t i = 0; i < t.size() && all_mapped;) {
                const int b = byte_level_byte(utf8_next(t, i));
                if (b < 0)
                    all_mapped = false;
                else
                    mapped += static_cast<char>(b);
            }
            bytes += all_mapped ? mapped : t;
        }
        tokens.assign(1, utf8_lossy(bytes));
    }
};

class SequenceDecoder final : public Decoder {
public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}

    void decode_chain(std::vector<std::string>& tokens) const override {
        for (const auto& p : parts_) p->decode_chain(tokens);
    }

private:
    std::vector<std::unique_ptr<Decoder>> parts_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const nlohmann::json& spec, const std::string& where) {
    if (spec.is_null()) return nullptr;
    check(spec.is_object() && spec.contains("type"), where, ": decoder must be an object with a \"type\"");
    const std::string type = spec.at("type").get<std::string>();
    if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
    if (type == "Sequence") {
        check(spec.contains("decoders") && spec.at("decoders").is_array(), where,
              ": Sequence decoder needs a \"decoders\" array");
        std::vector<std::unique_ptr<Decoder>> parts;
        for (const auto& sub : spec.at("decoders")) {
            auto p = make_decoder(sub, where);
            if (p) parts.push_back(std::move(p));
        }
        return std::make_unique<SequenceDecoder>(std::move(parts));
    }
    fail(where, ": decoder type \"", type, "\" is not supported (supported: ByteLevel, Sequence)");
}

}  // namespace flux2
