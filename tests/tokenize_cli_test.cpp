// `flux2 tokenize` end to end: runs the built binary.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <sstream>

#include "models/tokenizer/chat_template.h"
#include "tokenizer_test_util.h"

namespace flux2 {
namespace {

std::string run(const std::string& args, int* status) {
    const std::string cmd = std::string(FLUX2_BINARY) + " --log-level warn tokenize " + args + " 2>/dev/null";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf;
    while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    *status = pclose(p);
    return out;
}

std::string joined(const std::vector<int32_t>& ids) {
    std::ostringstream os;
    for (size_t i = 0; i < ids.size(); ++i) os << (i ? " " : "") << ids[i];
    return os.str();
}

TEST(TokenizeCli, PrintsTemplatedPaddedIds) {
    const std::string dir = test::data_path("qwen3-tokenizer");
    int status = 0;
    const std::string out =
        run("--tokenizer " + dir + " --prompt 'a red fox' --template qwen3 --max-length 32 --mask", &status);
    EXPECT_EQ(status, 0);
    std::vector<int32_t> mask;
    const auto ids = encode_prompt_ids(test::qwen3_tokenizer(), TemplateKind::qwen3, "a red fox", 32, &mask);
    EXPECT_EQ(out, joined(ids) + "\n" + joined(mask) + "\n");

    EXPECT_EQ(run("--tokenizer " + dir + " --prompt 'a red fox'", &status),
              joined(test::qwen3_tokenizer().encode("a red fox", true)) + "\n");
    EXPECT_EQ(status, 0);
    run("--tokenizer /nonexistent --prompt x", &status);
    EXPECT_NE(status, 0);
}

}  // namespace
}  // namespace flux2
