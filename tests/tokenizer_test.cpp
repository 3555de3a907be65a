// The tokenizer against Hugging Face tokenizers: the shared Qwen3 golden ids and tokenizer-refs.json
// (made by tests/data/make_tokenizer_refs.py).
#include "models/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/gzip_file.h"
#include "temp_dir.h"
#include "tokenizer_test_util.h"

namespace flux2 {
namespace {

using test::data_path;
using test::qwen3_tokenizer;
using test::refs;

std::vector<int32_t> ids_of(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

TEST(Tokenizer, Qwen3GoldenPlainIds) {
    const auto golden = test::read_json("qwen3-tokenizer-golden.json");
    const auto& prompts = golden.at("prompts");
    ASSERT_EQ(prompts.size(), golden.at("plain_ids").size());
    for (size_t i = 0; i < prompts.size(); ++i) {
        const std::string prompt = prompts[i].get<std::string>();
        EXPECT_EQ(qwen3_tokenizer().encode(prompt, true), ids_of(golden.at("plain_ids")[i])) << prompt;
    }
}

TEST(Tokenizer, Qwen3GoldenChatTextIds) {
    const auto golden = test::read_json("qwen3-tokenizer-golden.json");
    for (size_t i = 0; i < golden.at("chat_texts").size(); ++i) {
        const std::string text = golden.at("chat_texts")[i].get<std::string>();
        EXPECT_EQ(qwen3_tokenizer().encode(text, true), ids_of(golden.at("chat_ids")[i])) << text;
    }
}

TEST(Tokenizer, MatchesHuggingFaceOnExtraPrompts) {
    int n = 0;
    for (const auto& c : refs().at("encode")) {
        const Tokenizer& tok = test::tokenizer_named(c.at("tokenizer").get<std::string>());
        const auto ids = tok.encode(c.at("text").get<std::string>(), c.at("add_special_tokens").get<bool>());
        EXPECT_EQ(ids, ids_of(c.at("ids")))
            << c.at("tokenizer") << " / " << c.at("name") << " add_special_tokens=" << c.at("add_special_tokens");
        ++n;
    }
    EXPECT_GE(n, 40);
}

TEST(Tokenizer, SpecialTokenTextInPromptBecomesSpecialId) {
    // Hugging Face matches added tokens in the raw text by default (split_special_tokens=False).
    const auto ids = qwen3_tokenizer().encode("say <|im_start|> now");
    EXPECT_NE(std::find(ids.begin(), ids.end(), qwen3_tokenizer().token_to_id("<|im_start|>")), ids.end());
    EXPECT_EQ(qwen3_tokenizer().token_to_id("<|im_start|>"), 151644);
}

TEST(Tokenizer, EmptyTextHasNoIds) {
    EXPECT_TRUE(qwen3_tokenizer().encode("").empty());
    EXPECT_EQ(test::mistral_tokenizer().encode("", true), std::vector<int32_t>{1});
}

TEST(Tokenizer, NfcComposesBeforeBpe) {
    // "e" + U+0301 and the precomposed U+00E9 are the same text after NFC.
    EXPECT_EQ(qwen3_tokenizer().encode("Cafe\xCC\x81"), qwen3_tokenizer().encode("Caf\xC3\xA9"));
}

TEST(Tokenizer, InvalidUtf8IsAClearError) {
    const std::vector<std::string> bad = {
        "abc\xFF", "\xC3", "x\xE2\x82", "\xED\xA0\x80 surrogate", "\xC0\xAF overlong", "\xF4\x90\x80\x80 too big"};
    for (const std::string& text : bad) {
        try {
            qwen3_tokenizer().encode(text);
            ADD_FAILURE() << "no error for invalid UTF-8";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("not valid UTF-8"), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("offset"), std::string::npos) << e.what();
        }
    }
}

TEST(Tokenizer, DecodeMatchesHuggingFace) {
    for (const auto& c : refs().at("decode")) {
        const Tokenizer& tok = test::tokenizer_named(c.at("tokenizer").get<std::string>());
        EXPECT_EQ(tok.decode(ids_of(c.at("ids")), c.at("skip_special_tokens").get<bool>()),
                  c.at("text").get<std::string>());
    }
}

TEST(Tokenizer, DecodeRoundTripsText) {
    const std::string text = "  Ünïcödé 🐱🚀 中文\r\n\ttabs <|im_end|> end";
    EXPECT_EQ(qwen3_tokenizer().decode(qwen3_tokenizer().encode(text)), text);
    EXPECT_THROW(qwen3_tokenizer().decode({999999}), Error);
}

TEST(Tokenizer, CacheDoesNotChangeIds) {
    const std::string text = "repeat repeat repeat words words";
    const auto first = qwen3_tokenizer().encode(text);
    EXPECT_EQ(qwen3_tokenizer().encode(text), first);
    qwen3_tokenizer().clear_cache();
    EXPECT_EQ(qwen3_tokenizer().encode(text), first);
}

TEST(Tokenizer, VeryLongRunsOfOneClass) {
    // Stresses the regex (JIT stack) and the BPE heap: 100k letters, digits and spaces.
    const std::string letters(100000, 'a'), spaces(100000, ' ');
    const auto ids = qwen3_tokenizer().encode(letters + spaces + "x");
    EXPECT_GT(ids.size(), 100u);
    EXPECT_EQ(qwen3_tokenizer().decode(ids), letters + spaces + "x");
}

TEST(Tokenizer, ConfigIsRead) {
    const auto& c = qwen3_tokenizer().config();
    EXPECT_EQ(c.pad_token, "<|endoftext|>");
    EXPECT_EQ(c.eos_token, "<|im_end|>");
    EXPECT_EQ(c.padding_side, Side::right);
    EXPECT_EQ(qwen3_tokenizer().pad_id(), 151643);
    EXPECT_EQ(qwen3_tokenizer().vocab_size(), 151669);
    const auto& m = test::mistral_tokenizer().config();
    EXPECT_EQ(m.bos_token, "<s>");
    EXPECT_EQ(m.padding_side, Side::left);
    EXPECT_EQ(test::mistral_tokenizer().pad_id(), 11);
    EXPECT_EQ(test::mistral_tokenizer().token_to_id("[SYSTEM_PROMPT]"), 17);
}

TEST(TokenizerLoad, AcceptsFolderPlainAndGzippedFile) {
    namespace fs = std::filesystem;
    const test::TempDir tmp;
    const fs::path& dir = tmp.path();
    {
        std::ofstream out(dir / "tokenizer.json", std::ios::binary);
        out << read_file_maybe_gzip(data_path("qwen3-tokenizer/tokenizer.json.gz"));
    }
    fs::copy_file(data_path("qwen3-tokenizer/tokenizer_config.json"), dir / "tokenizer_config.json");
    const std::string text = "A cat holding a sign";
    const auto expected = qwen3_tokenizer().encode(text);
    EXPECT_EQ(Tokenizer::load(dir.string()).encode(text), expected);
    const Tokenizer from_file = Tokenizer::load((dir / "tokenizer.json").string());
    EXPECT_EQ(from_file.encode(text), expected);
    EXPECT_EQ(from_file.config().pad_token, "<|endoftext|>");  // config found beside the file
    EXPECT_EQ(Tokenizer::load(data_path("qwen3-tokenizer/tokenizer.json.gz")).encode(text), expected);
}

TEST(TokenizerLoad, RejectsTekkenAndMissingFiles) {
    namespace fs = std::filesystem;
    const test::TempDir tmp;
    const fs::path& dir = tmp.path();
    {
        std::ofstream out(dir / "tekken.json");
        out << R"({"config": {"pattern": "x"}, "vocab": []})";
    }
    try {
        Tokenizer::load(dir.string());
        ADD_FAILURE() << "tekken.json accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("tekken"), std::string::npos) << e.what();
    }
    EXPECT_THROW(Tokenizer::from_json(R"({"config": {}, "vocab": []})", "", "t.json"), Error);
    EXPECT_THROW(Tokenizer::load((dir / "nothing").string()), Error);
    fs::remove_all(dir);
    EXPECT_THROW(Tokenizer::load(dir.string()), Error);
}

TEST(TokenizerLoad, NoConfigMeansNoPadding) {
    const std::string json = read_file_maybe_gzip(data_path("mistral-tekken-tokenizer/tokenizer.json.gz"));
    const Tokenizer tok = Tokenizer::from_json(json, "", "mistral tokenizer.json");
    EXPECT_EQ(tok.encode("hello"), test::mistral_tokenizer().encode("hello"));
    EXPECT_THROW(tok.encode_to_length("hello", false, 8), Error);
    EXPECT_NO_THROW(tok.encode_to_length("hello hello hello", false, 2));  // no padding needed
}

}  // namespace
}  // namespace flux2
