// `flux2 inspect --json` and the inferred architecture in the text output, on the tiny checkpoints.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "models/flux2/flux2_config.h"

namespace flux2 {
namespace {

using nlohmann::json;
using test::contains;

class InspectJson : public test::Cli {
protected:
    json inspect(const std::vector<std::string>& args) {
        std::vector<std::string> all = {"inspect", "--json"};
        all.insert(all.end(), args.begin(), args.end());
        last = flux2(all);
        EXPECT_EQ(last.exit_code, 0) << last;
        return json::parse(last.out);
    }
    const json& layer(const json& j, const std::string& name) {
        for (const json& l : j["transformer"]["layers"])
            if (l["name"] == name) return l;
        static const json none;
        ADD_FAILURE() << "no layer " << name;
        return none;
    }
    test::RunResult last;
};

TEST_F(InspectJson, BflNvfp4MixedFile) {
    const std::string path = test::data_path("tiny-klein-nvfp4-mixed.safetensors");
    const json j = inspect({path});
    ASSERT_EQ(j["files"].size(), 1u);
    EXPECT_EQ(j["files"][0]["path"], path);
    EXPECT_TRUE(j["metadata"].contains("_quantization_metadata"));
    EXPECT_GT(j["tensors"].size(), 0u);
    const json& t = j["transformer"];
    ASSERT_TRUE(t["readable"].get<bool>()) << t.dump(1);
    EXPECT_EQ(t["architecture"]["name"], "custom");
    EXPECT_EQ(t["architecture"]["inner_dim"], 128);
    EXPECT_EQ(t["architecture"]["num_single_layers"], 2);
    EXPECT_EQ(t["architecture"]["mlp_hidden_dim"], 384);
    EXPECT_EQ(t["quantization"]["nvfp4"]["nibble_order"], "hi-first");

    const json& img_mlp = layer(j, "double_blocks.0.img_mlp.0");
    EXPECT_EQ(img_mlp["format"], "nvfp4");
    EXPECT_EQ(img_mlp["shape"], json({768, 128}));
    EXPECT_EQ(img_mlp["nibble_order"], "hi-first");
    EXPECT_EQ(img_mlp["scale_layout"], "swizzled-128x4");
    EXPECT_EQ(img_mlp["input_scale"], "present");
    EXPECT_EQ(img_mlp["source"], "header _quantization_metadata");
    EXPECT_EQ(layer(j, "double_blocks.0.txt_mlp.0")["input_scale"], "dynamic");
    EXPECT_EQ(layer(j, "img_in")["format"], "bf16");
    EXPECT_FALSE(layer(j, "img_in").contains("nibble_order"));

    // Bytes per format add up to the tensors' bytes.
    uint64_t by_format = 0, by_dtype = 0;
    for (const auto& [format, bytes] : t["bytes_per_format"].items()) by_format += bytes.get<uint64_t>();
    for (const auto& [dtype, d] : j["dtypes"].items()) by_dtype += d["bytes"].get<uint64_t>();
    EXPECT_EQ(by_format, by_dtype);
    EXPECT_GT(t["bytes_per_format"]["nvfp4"].get<uint64_t>(), 0u);
}

TEST_F(InspectJson, ModelOptFolderAndSummary) {
    const json j = inspect({test::data_path("tiny-klein-nvfp4-modelopt"), "--summary"});
    EXPECT_FALSE(j.contains("tensors"));
    const json& t = j["transformer"];
    EXPECT_FALSE(t.contains("layers"));
    EXPECT_EQ(t["quantization"]["declared_by"], "hf_quant_config.json");
    EXPECT_EQ(t["quantization"]["nvfp4"]["nibble_order"], "lo-first");
    EXPECT_EQ(t["quantization"]["nvfp4"]["scale_layout"], "linear");
    EXPECT_TRUE(contains(t["config_json"].get<std::string>(), "config.json"));
}

TEST_F(InspectJson, NotATransformerSaysWhy) {
    const json j = inspect({test::data_path("tiny-vae")});
    EXPECT_FALSE(j["transformer"]["readable"].get<bool>());
    EXPECT_TRUE(contains(j["transformer"]["error"].get<std::string>(), "not a FLUX.2 transformer"));
}

TEST_F(InspectJson, TextOutputNamesTheArchitecture) {
    test::RunResult r = flux2({"inspect", test::data_path("tiny-dev-bf16.safetensors"), "--summary"});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.out, "architecture: custom (FLUX.2 transformer: D 64")) << r.out;
}

TEST(Flux2Architecture, NamesTheReleasedSizes) {
    EXPECT_EQ(Flux2Config::preset("dev").architecture_name(), "dev");
    EXPECT_EQ(Flux2Config::preset("klein-4b").architecture_name(), "klein-4B");
    EXPECT_EQ(Flux2Config::preset("klein-9b").architecture_name(), "klein-9B");
    Flux2Config pruned = Flux2Config::preset("klein-4b");
    pruned.num_single_layers = 19;
    EXPECT_EQ(pruned.architecture_name(), "custom");
}

}  // namespace
}  // namespace flux2
