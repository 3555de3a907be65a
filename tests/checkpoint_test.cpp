// Checkpoint: one name space over a single file, a sharded index, or a folder; merged metadata.
#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "temp_dir.h"

namespace flux2 {
namespace {

using test::expect_error;
using test::TempDir;
using test::write_bytes;

// Writes a file holding F32 tensors [1] whose single value is the position of the name in `names`, plus 1.
void write_shard(const std::string& path, const std::vector<std::string>& names,
                 const std::map<std::string, std::string>& metadata = {}) {
    SafetensorsWriter writer;
    for (size_t i = 0; i < names.size(); ++i) {
        const float v = static_cast<float>(i + 1);
        writer.add_f32(names[i], Shape{1}, &v);
    }
    for (const auto& [k, v] : metadata) writer.set_metadata(k, v);
    writer.write(path);
}

void write_index(const std::string& path, const std::map<std::string, std::string>& weight_map) {
    nlohmann::json index = {{"metadata", {{"total_size", 12}}}, {"weight_map", weight_map}};
    write_bytes(path, index.dump(2));
}

TEST(Checkpoint, SingleFile) {
    TempDir dir;
    write_shard(dir.file("one.safetensors"), {"a", "b"}, {{"k", "v"}});
    Checkpoint ckpt = Checkpoint::open(dir.file("one.safetensors"));
    EXPECT_EQ(ckpt.describe(), dir.file("one.safetensors") + " (2 tensors)");
    EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(ckpt.metadata().at("k"), "v");
    EXPECT_EQ(read_f32(ckpt.get("b")), std::vector<float>{2.0f});
    EXPECT_EQ(ckpt.find("c"), nullptr);
    expect_error([&] { ckpt.get("c"); }, {"\"c\"", "not found", dir.file("one.safetensors")});
}

TEST(Checkpoint, ShardedIndex) {
    TempDir dir;
    write_shard(dir.file("model-00001-of-00002.safetensors"), {"x.weight", "x.bias"});
    write_shard(dir.file("model-00002-of-00002.safetensors"), {"y.weight"});
    write_index(dir.file("model.safetensors.index.json"), {{"x.weight", "model-00001-of-00002.safetensors"},
                                                           {"x.bias", "model-00001-of-00002.safetensors"},
                                                           {"y.weight", "model-00002-of-00002.safetensors"}});
    for (bool header_only : {false, true}) {
        Checkpoint ckpt = Checkpoint::open(dir.file("model.safetensors.index.json"), header_only);
        EXPECT_EQ(ckpt.files().size(), 2u);
        EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"x.bias", "x.weight", "y.weight"}));
        EXPECT_EQ(ckpt.get("y.weight").file, dir.file("model-00002-of-00002.safetensors"));
        EXPECT_EQ(ckpt.describe(), dir.file("model.safetensors.index.json") + " (2 files, 3 tensors)");
        if (!header_only) EXPECT_EQ(read_f32(ckpt.get("x.bias")), std::vector<float>{2.0f});
    }
    // The folder uses its index; a stray file the index does not mention is not opened.
    write_shard(dir.file("stray.safetensors"), {"x.weight"});
    Checkpoint folder = Checkpoint::open(dir.path().string());
    EXPECT_EQ(folder.describe(),
              "folder " + dir.path().string() + " via model.safetensors.index.json (2 files, 3 tensors)");
}

TEST(Checkpoint, IndexErrors) {
    TempDir dir;
    const std::string index = dir.file("m.safetensors.index.json");
    write_shard(dir.file("a.safetensors"), {"t1", "t2"});
    write_shard(dir.file("b.safetensors"), {"t2", "t3"});

    write_index(index, {{"t1", "a.safetensors"}, {"t9", "missing.safetensors"}});
    expect_error([&] { Checkpoint::open(index); }, {index, "\"t9\"", "missing.safetensors", "does not exist"});

    write_index(index, {{"t1", "a.safetensors"}, {"t2", "a.safetensors"}, {"t4", "a.safetensors"}});
    expect_error([&] { Checkpoint::open(index); }, {index, "\"t4\"", "a.safetensors", "lacks it"});

    write_index(index, {{"t1", "a.safetensors"}, {"t2", "a.safetensors"}, {"t3", "b.safetensors"}});
    expect_error([&] { Checkpoint::open(index); }, {"\"t2\"", "a.safetensors", "b.safetensors", "both"});

    write_index(index, {{"t1", "a.safetensors"}});
    expect_error([&] { Checkpoint::open(index); }, {index, "\"t2\"", "does not list"});

    write_bytes(index, R"({"metadata": {}})");
    expect_error([&] { Checkpoint::open(index); }, {index, "weight_map"});

    write_bytes(index, R"({"weight_map": {"t1": "a.safetensors", "t1": "b.safetensors"}})");
    expect_error([&] { Checkpoint::open(index); }, {index, "\"t1\"", "appears twice"});

    write_bytes(index, R"({"weight_map": {"t1": 3}})");
    expect_error([&] { Checkpoint::open(index); }, {index, "\"t1\"", "must be a file name"});
}

TEST(Checkpoint, FolderOfFiles) {
    TempDir dir;
    write_shard(dir.file("b.safetensors"), {"b1"}, {{"who", "b"}, {"only_b", "1"}});
    write_shard(dir.file("a.safetensors"), {"a1", "a2"}, {{"who", "a"}});
    write_bytes(dir.file("notes.txt"), "ignored");
    Checkpoint ckpt = Checkpoint::open(dir.path().string());
    ASSERT_EQ(ckpt.files().size(), 2u);
    EXPECT_EQ(ckpt.files()[0]->path(), dir.file("a.safetensors"));  // sorted by name
    EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a1", "a2", "b1"}));
    EXPECT_EQ(ckpt.describe(), "folder " + dir.path().string() + " (2 files, 3 tensors)");
    EXPECT_EQ(ckpt.metadata().at("who"), "b");  // later file wins
    EXPECT_EQ(ckpt.metadata().at("only_b"), "1");

    write_shard(dir.file("c.safetensors"), {"a2"});
    expect_error([&] { Checkpoint::open(dir.path().string()); },
                 {"\"a2\"", dir.file("a.safetensors"), dir.file("c.safetensors")});
}

TEST(Checkpoint, FolderFollowsSymlinksLikeTheHuggingFaceCache) {
    TempDir dir;
    std::filesystem::create_directory(dir.path() / "blobs");
    std::filesystem::create_directory(dir.path() / "snapshot");
    write_shard(dir.file("blobs/0123abcd"), {"w"});
    std::filesystem::create_symlink("../blobs/0123abcd", dir.path() / "snapshot" / "model.safetensors");
    Checkpoint ckpt = Checkpoint::open(dir.file("snapshot"));
    EXPECT_EQ(ckpt.names(), std::vector<std::string>{"w"});
    EXPECT_EQ(read_f32(ckpt.get("w")), std::vector<float>{1.0f});
}

TEST(Checkpoint, FolderWithTwoIndexesFallsBackToFiles) {
    TempDir dir;
    write_shard(dir.file("a.safetensors"), {"a"});
    write_index(dir.file("one.safetensors.index.json"), {{"a", "a.safetensors"}});
    write_index(dir.file("two.safetensors.index.json"), {{"a", "a.safetensors"}});
    EXPECT_EQ(Checkpoint::open(dir.path().string()).describe(),
              "folder " + dir.path().string() + " (1 file, 1 tensor)");
}

TEST(Checkpoint, EmptyFolderAndMissingPathAreErrors) {
    TempDir dir;
    expect_error([&] { Checkpoint::open(dir.path().string()); }, {dir.path().string(), "no *.safetensors"});
    expect_error([&] { Checkpoint::open(dir.file("nothing")); }, {dir.file("nothing"), "no such file or folder"});
}

TEST(Checkpoint, QuantizationMetadataLayersAreMerged) {
    TempDir dir;
    const std::string q1 = R"({"format_version": "1.0", "layers": {"l1": {"format": "nvfp4"}}})";
    const std::string q2 = R"({"format_version": "1.1", "layers": {"l2": {"format": "float8_e4m3fn"}}})";
    write_shard(dir.file("a.safetensors"), {"a"}, {{"_quantization_metadata", q1}});
    write_shard(dir.file("b.safetensors"), {"b"}, {{"_quantization_metadata", q2}});
    Checkpoint ckpt = Checkpoint::open(dir.path().string());
    const auto merged = nlohmann::json::parse(ckpt.metadata().at("_quantization_metadata"));
    EXPECT_EQ(merged["format_version"], "1.1");
    EXPECT_EQ(merged["layers"]["l1"]["format"], "nvfp4");
    EXPECT_EQ(merged["layers"]["l2"]["format"], "float8_e4m3fn");

    // The same layer described twice must agree.
    const std::string q3 = R"({"format_version": "1.0", "layers": {"l1": {"format": "float8_e4m3fn"}}})";
    write_shard(dir.file("c.safetensors"), {"c"}, {{"_quantization_metadata", q3}});
    expect_error([&] { Checkpoint::open(dir.path().string()); },
                 {"\"l1\"", dir.file("a.safetensors"), dir.file("c.safetensors")});

    // Merging needs valid JSON.
    write_shard(dir.file("c.safetensors"), {"c"}, {{"_quantization_metadata", "{not json"}});
    expect_error([&] { Checkpoint::open(dir.path().string()); },
                 {dir.file("c.safetensors"), "_quantization_metadata", "invalid JSON"});
}

TEST(Checkpoint, OpenFilesKeepsOrder) {
    TempDir dir;
    write_shard(dir.file("z.safetensors"), {"z"}, {{"k", "z"}});
    write_shard(dir.file("y.safetensors"), {"y"}, {{"k", "y"}});
    Checkpoint ckpt = Checkpoint::open_files({dir.file("z.safetensors"), dir.file("y.safetensors")});
    EXPECT_EQ(ckpt.metadata().at("k"), "y");
    EXPECT_EQ(ckpt.describe(), "2 safetensors files (2 files, 2 tensors)");
}

TEST(InspectCli, PrintsMetadataTotalsAndTensors) {
    const std::string path = std::string(FLUX2_TEST_DATA) + "/tiny-dev-nvfp4-mixed.safetensors";
    const std::string command = std::string(FLUX2_BINARY) + " inspect '" + path + "' 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string out;
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, got);
    ASSERT_EQ(pclose(pipe), 0) << out;
    EXPECT_NE(out.find(path + " (75 tensors)"), std::string::npos) << out;
    EXPECT_NE(out.find("_quantization_metadata"), std::string::npos) << out;
    EXPECT_NE(out.find("tensors: 75"), std::string::npos) << out;
    EXPECT_NE(out.find("F8_E4M3"), std::string::npos) << out;
    EXPECT_NE(out.find("double_blocks.0.img_mlp.0.weight_scale"), std::string::npos) << out;
}

}  // namespace
}  // namespace flux2
