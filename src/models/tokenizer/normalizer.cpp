#include "models/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uniset.h>
#include <unicode/utf16.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace flux2 {

namespace {

// Hugging Face tokenizers normalizes with the Unicode 9.0 tables of the unicode-normalization crate; ICU's are
// newer. Restricting ICU to the code points assigned by Unicode 9.0 gives the same results: characters added later
// pass through unchanged and end a run of marks (their combining class was 0 in 9.0), and Unicode's stability
// policy keeps the decompositions and combining classes of the older characters as they were.
const icu::UnicodeSet& unicode9_set() {
    static const icu::UnicodeSet set = [] {
        UErrorCode err = U_ZERO_ERROR;
        icu::UnicodeSet s(icu::UnicodeString::fromUTF8("[:Age=9.0:]"), err);
        check(U_SUCCESS(err), "ICU cannot build the Unicode 9.0 character set (", u_errorName(err), ")");
        s.freeze();
        return s;
    }();
    return set;
}

const icu::Normalizer2* icu_form(const std::string& form, UErrorCode& err) {
    if (form == "NFC") return icu::Normalizer2::getNFCInstance(err);
    if (form == "NFD") return icu::Normalizer2::getNFDInstance(err);
    if (form == "NFKC") return icu::Normalizer2::getNFKCInstance(err);
    if (form == "NFKD") return icu::Normalizer2::getNFKDInstance(err);
    return nullptr;
}

// One of the four Unicode normalization forms, through ICU (the UTF-8 entry points avoid a UTF-16 round trip).
class UnicodeNormalizer final : public Normalizer {
public:
    UnicodeNormalizer(const std::string& form, const std::string& where) : form_(form) {
        UErrorCode err = U_ZERO_ERROR;
        const icu::Normalizer2* full = icu_form(form, err);
        const icu::Normalizer2* decompose = icu_form(form == "NFKC" || form == "NFKD" ? "NFKD" : "NFD", err);
        check(full != nullptr && decompose != nullptr && U_SUCCESS(err), where, ": ICU has no ", form, " normalizer (",
              u_errorName(err), ")");
        impl_ = std::make_unique<icu::FilteredNormalizer2>(*full, unicode9_set());
        decompose_ = std::make_unique<icu::FilteredNormalizer2>(*decompose, unicode9_set());
        composes_ = form == "NFC" || form == "NFKC";
    }

    void normalize(std::string& text) const override {
        // ASCII is invariant under every normalization form, and most prompts are ASCII.
        bool ascii = true;
        for (unsigned char c : text) ascii &= c < 0x80;
        if (ascii) return;
        // ICU puts combining marks in canonical order by insertion, which is quadratic in the length of a run of
        // unsorted marks (32k marks: seconds; its isNormalized check too). Decomposing and ordering here first
        // leaves ICU sorted runs only.
        std::string decomposed = canonical_decomposition(text);
        if (!composes_) {
            text = std::move(decomposed);
            return;
        }
        UErrorCode err = U_ZERO_ERROR;
        std::string out;
        icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(decomposed.size()));
        impl_->normalizeUTF8(0, decomposed, sink, nullptr, err);
        check(U_SUCCESS(err), form_, " normalization failed: ", u_errorName(err));
        text = std::move(out);
    }

private:
    // Stable sort of [begin, end) by combining class: a counting sort over the 256 classes for long runs, so the
    // work stays linear in the run; short runs (the usual one or two accents) by insertion.
    static void sort_by_class(std::vector<std::pair<uint8_t, UChar32>>& cps, size_t begin, size_t end,
                              std::vector<std::pair<uint8_t, UChar32>>& scratch) {
        const auto by_class = [](const auto& a, const auto& b) { return a.first < b.first; };
        if (end - begin < 64) {
            std::stable_sort(cps.begin() + begin, cps.begin() + end, by_class);
            return;
        }
        size_t start[257] = {};
        for (size_t i = begin; i < end; ++i) ++start[cps[i].first + 1];
        for (int c = 1; c <= 256; ++c) start[c] += start[c - 1];
        scratch.resize(end - begin);
        for (size_t i = begin; i < end; ++i) scratch[start[cps[i].first]++] = cps[i];
        std::copy(scratch.begin(), scratch.end(), cps.begin() + begin);
    }

    // The form's decomposition with every run of non-starters stably sorted by combining class (the Canonical
    // Ordering Algorithm), linear in the length of the text.
    std::string canonical_decomposition(const std::string& text) const {
        std::vector<std::pair<uint8_t, UChar32>> cps;  // (combining class, code point)
        cps.reserve(text.size());
        icu::UnicodeString mapping;
        const auto* p = reinterpret_cast<const uint8_t*>(text.data());
        const int32_t n = static_cast<int32_t>(text.size());
        for (int32_t i = 0; i < n;) {
            UChar32 c;
            U8_NEXT(p, i, n, c);
            check(c >= 0, form_, " normalization: invalid UTF-8 at byte ", i);
            if (!decompose_->getDecomposition(c, mapping)) {
                cps.emplace_back(decompose_->getCombiningClass(c), c);
                continue;
            }
            for (int32_t j = 0; j < mapping.length();) {
                const UChar32 d = mapping.char32At(j);
                cps.emplace_back(decompose_->getCombiningClass(d), d);
                j += U16_LENGTH(d);
            }
        }
        std::vector<std::pair<uint8_t, UChar32>> scratch;
        for (size_t i = 0; i < cps.size();) {
            size_t end = i;
            while (end < cps.size() && cps[end].first != 0) ++end;
            sort_by_class(cps, i, end, scratch);
            i = end == i ? i + 1 : end;
        }
        std::string out;
        out.reserve(text.size() + text.size() / 2);
        for (const auto& [ccc, c] : cps) {
            char buf[4];
            int32_t len = 0;
            U8_APPEND_UNSAFE(buf, len, c);
            out.append(buf, len);
        }
        return out;
    }

    std::string form_;
    std::unique_ptr<icu::FilteredNormalizer2> impl_, decompose_;
    bool composes_ = false;
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
