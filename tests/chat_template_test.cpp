// FLUX.2 prompt templates and fixed-length prompt ids against transformers (tokenizer-refs.json) and the Qwen3
// golden chat texts.
#include "models/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "tokenizer_test_util.h"

namespace flux2 {
namespace {

using test::mistral_tokenizer;
using test::qwen3_tokenizer;

TEST(ChatTemplate, Qwen3TextMatchesGolden) {
    const auto golden = test::read_json("qwen3-tokenizer-golden.json");
    for (size_t i = 0; i < golden.at("prompts").size(); ++i) {
        const std::string prompt = golden.at("prompts")[i];
        EXPECT_EQ(apply_chat_template(qwen3_tokenizer(), TemplateKind::qwen3, prompt),
                  golden.at("chat_texts")[i].get<std::string>());
        std::vector<int32_t> mask;
        const auto ids = encode_prompt_ids(qwen3_tokenizer(), TemplateKind::qwen3, prompt, 512, &mask);
        const auto expected = golden.at("chat_ids")[i].get<std::vector<int32_t>>();
        ASSERT_EQ(ids.size(), 512u);
        EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + expected.size()), expected);
        EXPECT_EQ(ids.back(), qwen3_tokenizer().pad_id());  // right padding (golden padding_side)
        EXPECT_EQ(golden.at("padding_side"), "right");
    }
}

TEST(ChatTemplate, PromptIdsMatchTransformers) {
    int n = 0;
    for (const auto& c : test::refs().at("prompt_ids")) {
        const Tokenizer& tok = test::tokenizer_named(c.at("tokenizer"));
        std::vector<int32_t> mask;
        const auto ids = encode_prompt_ids(tok, parse_template_kind(c.at("template").get<std::string>()),
                                           c.at("prompt"), c.at("max_length"), &mask);
        const std::string what = c.at("tokenizer").get<std::string>() + " / " + c.at("name").get<std::string>() +
                                 " / " + c.at("template").get<std::string>();
        EXPECT_EQ(ids, c.at("ids").get<std::vector<int32_t>>()) << what;
        EXPECT_EQ(mask, c.at("attention_mask").get<std::vector<int32_t>>()) << what;
        ++n;
    }
    EXPECT_EQ(n, 16);
}

TEST(ChatTemplate, LongPromptIsTruncatedToMaxLength) {
    std::string prompt;
    for (int i = 0; prompt.size() < 2000; ++i)
        prompt += "object " + std::to_string(i) + " at " + std::to_string(i * 37) + ", ";
    prompt.resize(2000);
    for (TemplateKind kind : {TemplateKind::qwen3, TemplateKind::mistral}) {
        const Tokenizer& tok = kind == TemplateKind::qwen3 ? qwen3_tokenizer() : mistral_tokenizer();
        std::vector<int32_t> mask;
        const auto ids = encode_prompt_ids(tok, kind, prompt, 512, &mask);
        ASSERT_EQ(ids.size(), 512u);
        EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), 512);
        const auto full = tok.encode(apply_chat_template(tok, kind, prompt));
        ASSERT_GT(full.size(), 512u);
        EXPECT_EQ(ids, std::vector<int32_t>(full.begin(), full.begin() + 512));  // truncation on the right
    }
}

TEST(ChatTemplate, EmptyPromptIsPadded) {
    std::vector<int32_t> mask;
    const auto ids = encode_prompt_ids(mistral_tokenizer(), TemplateKind::mistral, "", 512, &mask);
    const auto real = mistral_tokenizer().encode(apply_chat_template(mistral_tokenizer(), TemplateKind::mistral, ""));
    ASSERT_EQ(ids.size(), 512u);
    const size_t n_pad = 512 - real.size();
    EXPECT_EQ(std::vector<int32_t>(ids.begin() + n_pad, ids.end()), real);  // left padding, from the config
    EXPECT_EQ(ids.front(), mistral_tokenizer().pad_id());
    EXPECT_EQ(std::count(mask.begin(), mask.end(), 0), static_cast<std::ptrdiff_t>(n_pad));
    EXPECT_EQ(mask.front(), 0);
    EXPECT_EQ(real.front(), 1);  // <s> once: the template's own, no post-processor BOS on top
}

TEST(ChatTemplate, MistralTextHasSystemMessageAndDropsImagePlaceholders) {
    const std::string text = apply_chat_template(mistral_tokenizer(), TemplateKind::mistral, "a [IMG]cat[IMG]");
    EXPECT_EQ(text,
              "<s>[SYSTEM_PROMPT]You are an AI that reasons about image descriptions. You give structured responses "
              "focusing on object relationships, object\nattribution and actions without speculation."
              "[/SYSTEM_PROMPT][INST]a cat[/INST]");
    const auto ids = mistral_tokenizer().encode(text);
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(ids[1], 17);     // [SYSTEM_PROMPT]
    EXPECT_EQ(ids.back(), 4);  // [/INST]
}

TEST(ChatTemplate, WrongTokenizerForTemplateIsAnError) {
    EXPECT_THROW(apply_chat_template(qwen3_tokenizer(), TemplateKind::mistral, "x"), Error);  // no bos_token
    EXPECT_THROW(apply_chat_template(mistral_tokenizer(), TemplateKind::qwen3, "x"), Error);
    EXPECT_THROW(parse_template_kind("llama"), Error);
    EXPECT_THROW(encode_prompt_ids(qwen3_tokenizer(), TemplateKind::qwen3, "x", 0, nullptr), Error);
}

}  // namespace
}  // namespace flux2
