// Tokenizer files that are wrong in type or size: each is a flux2::Error (exit 1 at the command line) naming the
// file and the key, found before anything large is allocated.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "io/gzip_file.h"
#include "models/tokenizer/tokenizer.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

using nlohmann::json;
using test::expect_error;

json toy() {
    return {{"model", {{"type", "BPE"}, {"vocab", {{"a", 0}, {"b", 1}, {"ab", 2}}}, {"merges", {"a b"}}}},
            {"added_tokens", {{{"id", 3}, {"content", "<pad>"}, {"special", true}}}}};
}

void load_spec(const json& spec, const std::string& config = "") {
    Tokenizer::from_json(spec.dump(), config, "bad/tokenizer.json", "bad/tokenizer_config.json");
}

TEST(TokenizerFiles, WrongTypesNameTheKey) {
    json vocab_string = toy();
    vocab_string["model"]["vocab"]["b"] = "1";
    expect_error([&] { load_spec(vocab_string); },
                 {"bad/tokenizer.json", "model.vocab[\"b\"] must be an integer id, got \"1\""});

    json added_string = toy();
    added_string["added_tokens"][0]["id"] = "3";
    expect_error([&] { load_spec(added_string); },
                 {"bad/tokenizer.json", "added_tokens[0] \"id\" must be an integer, got \"3\""});

    json added_no_id = toy();
    added_no_id["added_tokens"][0].erase("id");
    expect_error([&] { load_spec(added_no_id); }, {"bad/tokenizer.json", "added_tokens[0] has no \"id\""});

    json special_number = toy();
    special_number["added_tokens"][0]["special"] = 1;
    expect_error([&] { load_spec(special_number); }, {"added_tokens[0] \"special\" must be true or false"});

    // Anything else of the wrong type still names the file rather than escaping as an internal error.
    json merges_number = toy();
    merges_number["model"]["dropout"] = "x";
    expect_error([&] { load_spec(merges_number); }, {"bad/tokenizer.json"});
}

TEST(TokenizerFiles, HugeIdsAreRefusedBeforeAllocating) {
    for (int64_t id : {int64_t{1} << 31, (int64_t{1} << 31) - 1, int64_t{1} << 40}) {
        json spec = toy();
        spec["model"]["vocab"]["ab"] = id;
        expect_error([&] { load_spec(spec); }, {"bad/tokenizer.json", "model.vocab[\"ab\"] has id"});
        json added = toy();
        added["added_tokens"][0]["id"] = id;
        if (id > (int64_t{1} << 31) - 2) expect_error([&] { load_spec(added); }, {"added_tokens[0] \"id\""});
    }
    const Tokenizer tok = Tokenizer::from_json(toy().dump(), R"({"pad_token": "<pad>"})", "t", "c");
    expect_error([&] { tok.encode_to_length("ab", false, 2147483647); }, {"max_length must be 1 to 1048576"});
}

TEST(TokenizerFiles, ConfigErrorsNameTheConfigFile) {
    expect_error([&] { load_spec(toy(), R"({"padding_side": 5})"); },
                 {"bad/tokenizer_config.json", "\"padding_side\" must be a string"});
    expect_error([&] { load_spec(toy(), R"({"padding_side": "middle"})"); }, {"bad/tokenizer_config.json"});
    expect_error([&] { load_spec(toy(), "{not json"); }, {"bad/tokenizer_config.json", "invalid JSON"});
}

TEST(TokenizerFiles, FoldersDevicesAndGzipBombs) {
    test::TempDir dir;
    std::filesystem::create_directories(dir.file("folder/tokenizer.json"));
    expect_error([&] { Tokenizer::load(dir.file("folder")); }, {"tokenizer.json", "is a folder"});
    expect_error([&] { Tokenizer::load("/dev/zero"); }, {"/dev/zero", "not a regular file"});

    // 4 MiB of zeros in a few kilobytes, read with a 1 MiB limit.
    const std::string zeros(4 << 20, '\0');
    gzFile gz = gzopen(dir.file("bomb.gz").c_str(), "wb9");
    gzwrite(gz, zeros.data(), static_cast<unsigned>(zeros.size()));
    gzclose(gz);
    expect_error([&] { read_file_maybe_gzip(dir.file("bomb.gz"), 1 << 20); },
                 {"bomb.gz", "decompresses to more than 1048576 bytes"});
    expect_error([&] { read_file_maybe_gzip(dir.file("bomb.gz"), 100); }, {"bomb.gz", "more than the limit of 100"});
    EXPECT_EQ(read_file_maybe_gzip(dir.file("bomb.gz"), 8 << 20).size(), zeros.size());
}

class TokenizerFilesCli : public test::Cli {};

TEST_F(TokenizerFilesCli, BadFilesExitWithOneNamingFileAndKey) {
    std::filesystem::create_directories(file("tok"));
    json spec = toy();
    spec["added_tokens"][0]["id"] = "3";
    std::ofstream(file("tok/tokenizer.json")) << spec.dump();
    test::RunResult r = flux2({"tokenize", "--tokenizer", file("tok"), "--prompt", "ab"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(test::contains(r.err, file("tok/tokenizer.json") + ": added_tokens[0] \"id\"")) << r.err;

    std::ofstream(file("tok/tokenizer.json"), std::ios::trunc) << toy().dump();
    std::ofstream(file("tok/tokenizer_config.json")) << R"({"pad_token": "<pad>", "truncation_side": []})";
    r = flux2({"tokenize", "--tokenizer", file("tok"), "--prompt", "ab"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(test::contains(r.err, file("tok/tokenizer_config.json"))) << r.err;

    std::ofstream(file("tok/tokenizer_config.json"), std::ios::trunc) << R"({"pad_token": "<pad>"})";
    r = flux2({"tokenize", "--tokenizer", file("tok"), "--prompt", "ab", "--max-length", "2147483647"});
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(test::contains(r.err, "max_length must be 1 to")) << r.err;

    r = flux2({"tokenize", "--tokenizer", "/dev/zero", "--prompt", "ab"});
    EXPECT_EQ(r.exit_code, 1) << r;
}

}  // namespace
}  // namespace flux2
