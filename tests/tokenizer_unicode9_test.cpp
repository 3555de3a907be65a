// NFC as Hugging Face tokenizers computes it (Unicode 9.0 tables), and a normalizer that stays fast on long runs of
// unsorted combining marks.
#include <gtest/gtest.h>
#include <unicode/normalizer2.h>
#include <unicode/uniset.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <random>

#include "models/tokenizer/normalizer.h"
#include "tokenizer_test_util.h"

namespace flux2 {
namespace {

std::string nfc(std::string text) {
    static const auto n = make_normalizer({{"type", "NFC"}}, "test");
    n->normalize(text);
    return text;
}

std::string utf8(const std::u32string& s) {
    std::string out;
    for (char32_t c : s) icu::UnicodeString(static_cast<UChar32>(c)).toUTF8String(out);
    return out;
}

TEST(TokenizerUnicode9, MatchesHuggingFaceOnLaterCharacters) {
    // U+0D3B (Unicode 10) has combining class 0 in Unicode 9, so it does not move before U+A8E2 (class 230).
    EXPECT_EQ(test::qwen3_tokenizer().encode("\uA8E2\u0D3B"), (std::vector<int32_t>{166, 96, 95, 33739, 119}));
    EXPECT_EQ(nfc("\uA8E2\u0D3B"), "\uA8E2\u0D3B");
    // Dives Akuru (Unicode 13): U+11935 U+11930 composes to U+11938 in ICU's tables, not in Unicode 9's.
    EXPECT_EQ(nfc("\U00011935\U00011930"), "\U00011935\U00011930");
    EXPECT_EQ(nfc("\U00011938"), "\U00011938");
    // Unicode 9 compositions and orderings still apply.
    EXPECT_EQ(nfc("e\u0301"), "\u00E9");
    EXPECT_EQ(nfc("a\u0301\u0316"), "\u00E1\u0316") << "U+0316 (220) sorts before U+0301 (230), then a+0301 composes";
    EXPECT_EQ(nfc("\u1100\u1161\u11A8"), "\uAC01");  // Hangul L V T
}

TEST(TokenizerUnicode9, AgreesWithIcuRestrictedToUnicode9OnRandomMarks) {
    // The normalizer sorts runs itself before ICU composes; on short runs plain ICU is the reference.
    UErrorCode err = U_ZERO_ERROR;
    icu::UnicodeSet set(icu::UnicodeString::fromUTF8("[:Age=9.0:]"), err);
    ASSERT_TRUE(U_SUCCESS(err));
    const icu::FilteredNormalizer2 reference(*icu::Normalizer2::getNFCInstance(err), set);
    const std::u32string alphabet =
        U"aeAo\u00E9\u0301\u0316\u0327\u0308\u0344\u0F73\u0F71\u0F72\u05B0\u0D3B\uA8E2"
        U"\u1100\u1161\u11A8\uAC00\U00011935\U00011930\u3099\u304B\u0345\u0300";
    std::mt19937 rng(9);
    for (int i = 0; i < 3000; ++i) {
        std::u32string s;
        const int len = std::uniform_int_distribution<int>(1, 12)(rng);
        for (int k = 0; k < len; ++k) s += alphabet[rng() % alphabet.size()];
        const std::string text = utf8(s);
        std::string want;
        static_cast<const icu::Normalizer2&>(reference)
            .normalize(icu::UnicodeString::fromUTF8(text), err)
            .toUTF8String(want);
        ASSERT_EQ(nfc(text), want) << "input #" << i;
    }
}

double seconds_to_normalize(const std::string& text) {
    double best = 1e9;
    for (int rep = 0; rep < 3; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::string out = nfc(text);
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        EXPECT_EQ(out.size(), text.size());
    }
    return best;
}

TEST(TokenizerUnicode9, LongUnsortedMarkRunsAreNotQuadratic) {
    // Classes 230 and 220 alternating: every U+0316 must move past all the U+0301 before it.
    auto marks = [](int n) {
        std::string s = "x";
        for (int i = 0; i < n / 2; ++i) s += "\u0301\u0316";
        return s;
    };
    const double t8 = seconds_to_normalize(marks(8192)), t32 = seconds_to_normalize(marks(32768));
    // Quadratic work grows 16x from 8k to 32k marks, linear work 4x. The floor keeps timer noise of tiny durations
    // from failing the ratio.
    EXPECT_LT(t32, 8.0 * std::max(t8, 1e-3)) << "8k: " << t8 << " s, 32k: " << t32 << " s";
    EXPECT_LT(t32, 2.0) << "32k marks took " << t32 << " s";
    // And the result is the canonical order: all 220s before all 230s, for short runs and long ones.
    EXPECT_EQ(nfc(marks(8)), "x\u0316\u0316\u0316\u0316\u0301\u0301\u0301\u0301");
    std::string sorted = "x";
    for (int i = 0; i < 4096; ++i) sorted += "\u0316";
    for (int i = 0; i < 4096; ++i) sorted += "\u0301";
    EXPECT_EQ(nfc(marks(8192)), sorted);
}

}  // namespace
}  // namespace flux2
