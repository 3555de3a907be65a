// Tokenizer building blocks: Split behaviours, added-token options, both merge spellings, UTF-8 and byte-level
// helpers, and the errors for what is not supported. References from Hugging Face (tokenizer-refs.json).
#include <gtest/gtest.h>

#include "core/error.h"
#include "models/tokenizer/byte_level.h"
#include "models/tokenizer/pretokenizer.h"
#include "models/tokenizer/tokenizer.h"
#include "models/tokenizer/utf8.h"
#include "tokenizer_test_util.h"

namespace flux2 {
namespace {

using nlohmann::json;
using test::refs;

std::string behavior_name(const std::string& snake) {
    if (snake == "removed") return "Removed";
    if (snake == "isolated") return "Isolated";
    if (snake == "merged_with_previous") return "MergedWithPrevious";
    if (snake == "merged_with_next") return "MergedWithNext";
    return "Contiguous";
}

TEST(TokenizerParts, SplitBehavioursMatchHuggingFace) {
    int n = 0;
    for (const auto& c : refs().at("split")) {
        json pattern = c.contains("pattern") ? json{{"Regex", c.at("pattern")}} : json{{"String", c.at("string")}};
        const json spec = {{"type", "Split"},
                           {"pattern", pattern},
                           {"behavior", behavior_name(c.at("behavior"))},
                           {"invert", c.at("invert")}};
        const auto pre = make_pre_tokenizer(spec, "test");
        std::vector<std::string> pieces{c.at("text").get<std::string>()};
        pre->split(pieces);
        EXPECT_EQ(pieces, c.at("pieces").get<std::vector<std::string>>()) << spec.dump();
        ++n;
    }
    EXPECT_EQ(n, 32);
}

json toy_spec() { return refs().at("toy").at("tokenizer"); }

TEST(TokenizerParts, AddedTokenOptionsAndNormalizersMatchHuggingFace) {
    const Tokenizer tok = Tokenizer::from_json(toy_spec().dump(), "", "toy");
    for (const auto& c : refs().at("toy").at("cases"))
        EXPECT_EQ(tok.encode(c.at("text").get<std::string>()), c.at("ids").get<std::vector<int32_t>>()) << c.at("text");
}

TEST(TokenizerParts, BothMergeSpellingsGiveTheSameIds) {
    json spec = toy_spec();
    ASSERT_TRUE(spec["model"]["merges"][0].is_array());
    const Tokenizer as_arrays = Tokenizer::from_json(spec.dump(), "", "toy arrays");
    for (auto& m : spec["model"]["merges"]) m = m[0].get<std::string>() + " " + m[1].get<std::string>();
    const Tokenizer as_strings = Tokenizer::from_json(spec.dump(), "", "toy strings");
    for (const auto& c : refs().at("toy").at("cases")) {
        const std::string text = c.at("text");
        EXPECT_EQ(as_strings.encode(text), as_arrays.encode(text)) << text;
    }
    EXPECT_EQ(as_strings.encode("hello"), std::vector<int32_t>{as_strings.token_to_id("hello")});
}

TEST(TokenizerParts, IgnoreMergesTakesWholeVocabWords) {
    // "hello" is reachable by merges; "hlo" only as a vocab entry, which ignore_merges makes usable whole.
    json spec = toy_spec();
    spec["model"]["vocab"]["hlo"] = 1000;
    const Tokenizer plain = Tokenizer::from_json(spec.dump(), "", "toy");
    EXPECT_EQ(plain.encode("hlo").size(), 3u);
    spec["model"]["ignore_merges"] = true;
    const Tokenizer ignoring = Tokenizer::from_json(spec.dump(), "", "toy");
    EXPECT_EQ(ignoring.encode("hlo"), std::vector<int32_t>{1000});
}

TEST(TokenizerParts, UnknownCharactersNeedAnUnkToken) {
    json spec = toy_spec();
    spec["pre_tokenizer"] = nullptr;  // no byte-level mapping: "中" is not in the vocab
    spec["model"]["vocab"]["<unk>"] = 2000;
    const Tokenizer no_unk = Tokenizer::from_json(spec.dump(), "", "toy");
    EXPECT_THROW(no_unk.encode("\xE4\xB8\xAD"), Error);
    spec["model"]["unk_token"] = "<unk>";
    EXPECT_EQ(Tokenizer::from_json(spec.dump(), "", "toy").encode("a\xE4\xB8\xAD\xE4\xB8\xAD"),
              (std::vector<int32_t>{64, 2000, 2000}));
    spec["model"]["fuse_unk"] = true;
    EXPECT_EQ(Tokenizer::from_json(spec.dump(), "", "toy").encode("a\xE4\xB8\xAD\xE4\xB8\xAD"),
              (std::vector<int32_t>{64, 2000}));
}

TEST(TokenizerParts, BadFilesAreClearErrors) {
    const auto expect_error = [](const json& spec, const std::string& needle) {
        try {
            Tokenizer::from_json(spec.dump(), "", "bad.json");
            ADD_FAILURE() << "accepted: " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
        }
    };
    json spec = toy_spec();
    spec["model"]["merges"].push_back(json::array({"q", "zz"}));
    expect_error(spec, "merge #");
    spec = toy_spec();
    spec["model"]["merges"].push_back("a b c");
    expect_error(spec, "merge #");
    spec = toy_spec();
    spec["pre_tokenizer"] = {{"type", "Metaspace"}};
    expect_error(spec, "Metaspace");
    spec = toy_spec();
    spec["normalizer"] = {{"type", "Lowercase"}};
    expect_error(spec, "Lowercase");
    spec = toy_spec();
    spec["model"]["byte_fallback"] = true;
    expect_error(spec, "byte_fallback");
    spec = toy_spec();
    spec["model"]["type"] = "WordPiece";
    expect_error(spec, "WordPiece");
    spec = toy_spec();
    spec["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    expect_error(spec, "(unclosed");
    spec = toy_spec();
    spec["post_processor"] = {{"type", "RobertaProcessing"}};
    expect_error(spec, "RobertaProcessing");
}

TEST(TokenizerParts, Utf8Validation) {
    EXPECT_EQ(utf8_first_invalid("plain ascii text that is long enough"), utf8_valid);
    EXPECT_EQ(utf8_first_invalid("\xF0\x9F\x90\xB1 cat \xE4\xB8\xAD"), utf8_valid);
    EXPECT_EQ(utf8_first_invalid("0123456789\xFF"), 10u);
    EXPECT_EQ(utf8_first_invalid("ab\xE0\x80\x80"), 2u);  // overlong
    EXPECT_EQ(utf8_lossy("a\x80\x80"
                         "b\xE2\x82"),
              "a\xEF\xBF\xBD\xEF\xBF\xBD"
              "b\xEF\xBF\xBD");
}

TEST(TokenizerParts, ByteLevelMappingIsGpt2s) {
    EXPECT_EQ(byte_level_char(' '), "\xC4\xA0");   // Ġ U+0120
    EXPECT_EQ(byte_level_char('\n'), "\xC4\x8A");  // Ċ U+010A
    EXPECT_EQ(byte_level_char('A'), "A");
    for (int b = 0; b < 256; ++b) {
        const std::string& s = byte_level_char(static_cast<unsigned char>(b));
        size_t i = 0;
        EXPECT_EQ(byte_level_byte(utf8_next(s, i)), b);
    }
}

}  // namespace
}  // namespace flux2
