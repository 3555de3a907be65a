#include "models/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace flux2 {

namespace {

// One of the four Unicode normalization forms, through ICU (the UTF-8 entry points avoid a UTF-16 round trip).
class UnicodeNormalizer final : public Normalizer {
public:
    UnicodeNormalizer(const std::string& form, const std::string& where) : form_(form) {
        UErrorCode err = U_ZERO_ERROR;
        if (form == "NFC") impl_ = icu::Normalizer2::getNFCInstance(err);
        if (form == "NFD") impl_ = icu::Normalizer2::getNFDInstance(err);
        if (form == "NFKC") impl_ = icu::Normalizer2::getNFKCInstance(err);
        if (form == "NFKD") impl_ = icu::Normalizer2::getNFKDInstance(err);
        check(impl_ != nullptr && U_SUCCESS(err), where, ": ICU has no ", form, " normalizer (", u_errorName(err), ")");
    }

    void normalize(std::string& text) const override {
        // ASCII is invariant under every normalization form, and most prompts are ASCII.
        bool ascii = true;
        for (unsigned char c : text) ascii &= c < 0x80;
        if (ascii) return;
        UErrorCode err = U_ZERO_ERROR;
        if (impl_->isNormalizedUTF8(text, err) && U_SUCCESS(err)) return;
        err = U_ZERO_ERROR;
        std::string out;
        icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(text.size()));
        impl_->normalizeUTF8(0, text, sink, nullptr, err);
        check(U_SUCCESS(err), form_, " normalization failed: ", u_errorName(err));
        text = std::move(out);
    }

private:
    std::string form_;
    const icu::Normalizer2* impl_ = nullptr;
};

class SequenceNormalizer final : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}

    void normalize(std::string& text) const override {
        for (const auto& p : parts_) p->normalize(text);
    }

private:
    std::vector<std::unique_ptr<Normalizer>> parts_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& where) {
    if (spec.is_null()) return nullptr;
    check(spec.is_object() && spec.contains("type"), where, ": normalizer must be an object with a \"type\"");
    const std::string type = spec.at("type").get<std::string>();
    if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD")
        return std::make_unique<UnicodeNormalizer>(type, where);
    if (type == "Sequence") {
        check(spec.contains("normalizers") && spec.at("normalizers").is_array(), where,
              ": Sequence normalizer needs a \"normalizers\" array");
        std::vector<std::unique_ptr<Normalizer>> parts;
        for (const auto& sub : spec.at("normalizers")) {
            auto p = make_normalizer(sub, where);
            if (p) parts.push_back(std::move(p));
        }
        return std::make_unique<SequenceNormalizer>(std::move(parts));
    }
    fail(where, ": normalizer type \"", type, "\" is not supported (supported: NFC, NFD, NFKC, NFKD, Sequence)");
}

}  // namespace flux2
