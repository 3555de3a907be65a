// --prompt-file (and - for stdin) on `tokenize` (one line of ids per input line) and `encode-prompt` (the file is
// the prompt).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "cli_runner.h"
#include "models/tokenizer/chat_template.h"
#include "tokenizer_test_util.h"

namespace flux2 {
namespace {

using test::contains;

std::string joined(const std::vector<int32_t>& ids) {
    std::ostringstream os;
    for (size_t i = 0; i < ids.size(); ++i) os << (i ? " " : "") << ids[i];
    return os.str();
}

class PromptFile : public test::Cli {
protected:
    std::string write(const std::string& name, const std::string& text) {
        std::ofstream(file(name), std::ios::binary) << text;
        return file(name);
    }
    std::string expected_lines(const std::vector<std::string>& prompts) {
        std::string out;
        for (const auto& p : prompts) out += joined(test::qwen3_tokenizer().encode(p, true)) + "\n";
        return out;
    }
};

TEST_F(PromptFile, TokenizePrintsOneLineOfIdsPerInputLine) {
    // A NUL and a long line, which the command line cannot carry, an empty line and a CRLF ending.
    const std::string nul("a\0b", 3), long_line(200000, 'x');
    const std::string path = write("prompts.txt", "a red fox\n" + nul + "\n\nlast line\r\n" + long_line);
    const std::string tok = test::data_path("qwen3-tokenizer");
    test::RunResult r = flux2({"tokenize", "--tokenizer", tok, "--prompt-file", path});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, expected_lines({"a red fox", nul, "", "last line", long_line}));

    r = flux2({"tokenize", "--tokenizer", tok, "--prompt-file", "-"}, path);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, expected_lines({"a red fox", nul, "", "last line", long_line}));

    // With --max-length each prompt gives its padded ids (and with --mask its mask on the next line).
    write("two.txt", "a cat\na dog\n");
    r = flux2({"tokenize", "--tokenizer", tok, "--prompt-file", file("two.txt"), "--template", "qwen3", "--max-length",
               "16", "--mask"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string want;
    for (const char* p : {"a cat", "a dog"}) {
        std::vector<int32_t> mask;
        want += joined(encode_prompt_ids(test::qwen3_tokenizer(), TemplateKind::qwen3, p, 16, &mask)) + "\n";
        want += joined(mask) + "\n";
    }
    EXPECT_EQ(r.out, want);
}

TEST_F(PromptFile, TokenizeNeedsExactlyOnePromptSource) {
    const std::string tok = test::data_path("qwen3-tokenizer");
    test::RunResult r = flux2({"tokenize", "--tokenizer", tok});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "--prompt-file")) << r.err;
    r = flux2({"tokenize", "--tokenizer", tok, "--prompt", "x", "--prompt-file", write("p.txt", "y")});
    EXPECT_NE(r.exit_code, 0) << r;
    r = flux2({"tokenize", "--tokenizer", tok, "--prompt-file", file("missing.txt")});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, file("missing.txt"))) << r.err;
}

TEST_F(PromptFile, EncodePromptReadsTheWholeFileAsThePrompt) {
    // The demo set (built by one small generate) holds a text encoder with the real Qwen3 tokenizer.
    test::RunResult gen = flux2({"generate", "--width", "32", "--height", "32", "--num-inference-steps", "1",
                                 "--output-path", file("demo.png")});
    ASSERT_EQ(gen.exit_code, 0) << gen;
    const std::string prompt = "a cat\non two lines";
    test::RunResult r = flux2({"encode-prompt", "--model-path", demo_dir(), "--prompt-file", "-", "--output",
                               file("from_file.safetensors"), "--max-sequence-length", "32"},
                              write("prompt.txt", prompt + "\n"));
    ASSERT_EQ(r.exit_code, 0) << r;
    r = flux2({"encode-prompt", "--model-path", demo_dir(), "--prompt", prompt, "--output",
               file("from_flag.safetensors"), "--max-sequence-length", "32"});
    ASSERT_EQ(r.exit_code, 0) << r;
    auto a = SafetensorsFile::open(file("from_file.safetensors")),
         b = SafetensorsFile::open(file("from_flag.safetensors"));
    EXPECT_EQ(a->metadata().at("prompt"), prompt);
    EXPECT_EQ(read_f32(*a->find("input_ids")), read_f32(*b->find("input_ids")));
    EXPECT_EQ(read_f32(*a->find("prompt_embeds")), read_f32(*b->find("prompt_embeds")));
}

}  // namespace
}  // namespace flux2
