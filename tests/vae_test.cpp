// The VAE against diffusers' AutoencoderKLFlux2 (tiny-vae golden, README tolerance 1e-5), from the diffusers folder
// and from the same weights under BFL ae.safetensors names.
#include "models/vae/vae.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "backend/backend.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "models/vae/vae_checkpoint.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

// diffusers -> BFL names, written independently of vae_name_from_bfl (4 blocks, as FLUX.2 and tiny-vae have).
std::string bfl_name_of(const std::string& d) {
    std::string n = d;
    const std::vector<std::pair<std::string, std::string>> rules = {
        {R"(^quant_conv\.)", "encoder.quant_conv."},
        {R"(^post_quant_conv\.)", "decoder.post_quant_conv."},
        {R"(conv_norm_out\.)", "norm_out."},
        {R"(down_blocks\.(\d)\.resnets\.)", "down.$1.block."},
        {R"(down_blocks\.(\d)\.downsamplers\.0\.)", "down.$1.downsample."},
        {R"(mid_block\.resnets\.0\.)", "mid.block_1."},
        {R"(mid_block\.resnets\.1\.)", "mid.block_2."},
        {R"(mid_block\.attentions\.0\.group_norm\.)", "mid.attn_1.norm."},
        {R"(mid_block\.attentions\.0\.to_(q|k|v)\.)", "mid.attn_1.$1."},
        {R"(mid_block\.attentions\.0\.to_out\.0\.)", "mid.attn_1.proj_out."},
        {R"(conv_shortcut)", "nin_shortcut"},
    };
    for (const auto& [from, to] : rules) n = std::regex_replace(n, std::regex(from), to);
    std::smatch m;
    if (std::regex_search(n, m, std::regex(R"(^decoder\.up_blocks\.(\d)\.(resnets|upsamplers\.0)\.)")))
        n = str("decoder.up.", 3 - std::stoi(m[1]), m[2] == "resnets" ? ".block." : ".upsample.", m.suffix().str());
    return n;
}

class VaeGolden : public ::testing::Test {
protected:
    void expect_matches_golden(const Flux2Vae& vae) {
        auto golden = SafetensorsFile::open(test::data_path("tiny-vae-golden.safetensors"));
        const Tensor decoded = vae.decode(load_f32(*golden->find("decode.z")));
        const Tensor expected_image = load_f32(*golden->find("decode.image"));
        ASSERT_EQ(decoded.shape(), expected_image.shape());
        EXPECT_LE(test::rel_error(decoded.to_vector(), expected_image.to_vector()), 1e-5);

        const Tensor mean = vae.encode_mean(load_f32(*golden->find("encode.image")));
        const Tensor expected_mean = load_f32(*golden->find("encode.mean"));
        ASSERT_EQ(mean.shape(), expected_mean.shape());
        EXPECT_LE(test::rel_error(mean.to_vector(), expected_mean.to_vector()), 1e-5);
    }
    std::unique_ptr<Backend> backend = make_backend(BackendOptions{});
};

TEST_F(VaeGolden, DiffusersFolder) {
    const Flux2Vae vae = Flux2Vae::load(test::data_path("tiny-vae"), *backend);
    EXPECT_EQ(vae.config().block_out_channels, (std::vector<int64_t>{32, 32, 64, 64}));
    EXPECT_EQ(vae.config().layers_per_block, 1);
    EXPECT_EQ(vae.latent_batch_norm().running_mean.shape(), (Shape{128}));
    EXPECT_FLOAT_EQ(vae.latent_batch_norm().eps, 1e-4f);
    expect_matches_golden(vae);
}

TEST_F(VaeGolden, BflAutoencoderNames) {
    const Checkpoint diffusers = Checkpoint::open(test::data_path("tiny-vae"));
    SafetensorsWriter writer;
    for (const std::string& name : diffusers.names()) {
        Tensor t = load_f32(diffusers.get(name));
        if (name.find("attentions.0.to_") != std::string::npos && t.ndim() == 2)
            t = t.reshape({t.dim(0), t.dim(1), 1, 1});  // BFL keeps the attention projections as 1x1 convs
        writer.add_f32(bfl_name_of(name), t);
    }
    const test::TempDir tmp;
    const std::string path = tmp.file("ae.safetensors");
    writer.write(path);
    VaeCheckpoint ckpt = VaeCheckpoint::open(path);
    EXPECT_TRUE(ckpt.is_bfl_layout());
    EXPECT_FALSE(ckpt.config().has_value());
    const VaeConfig inferred = VaeConfig::infer(ckpt);
    EXPECT_EQ(inferred.block_out_channels, (std::vector<int64_t>{32, 32, 64, 64}));
    EXPECT_EQ(inferred.layers_per_block, 1);
    EXPECT_EQ(inferred.latent_channels, 32);
    expect_matches_golden(Flux2Vae::load(ckpt, inferred, *backend));
}

TEST(VaeNames, BflToDiffusers) {
    EXPECT_EQ(vae_name_from_bfl("decoder.up.0.block.2.nin_shortcut.weight", 4),
              "decoder.up_blocks.3.resnets.2.conv_shortcut.weight");
    EXPECT_EQ(vae_name_from_bfl("decoder.up.3.upsample.conv.bias", 4), "decoder.up_blocks.0.upsamplers.0.conv.bias");
    EXPECT_EQ(vae_name_from_bfl("encoder.down.1.downsample.conv.weight", 4),
              "encoder.down_blocks.1.downsamplers.0.conv.weight");
    EXPECT_EQ(vae_name_from_bfl("encoder.mid.attn_1.proj_out.weight", 4),
              "encoder.mid_block.attentions.0.to_out.0.weight");
    EXPECT_EQ(vae_name_from_bfl("decoder.mid.block_2.norm1.bias", 4), "decoder.mid_block.resnets.1.norm1.bias");
    EXPECT_EQ(vae_name_from_bfl("encoder.quant_conv.weight", 4), "quant_conv.weight");
    EXPECT_EQ(vae_name_from_bfl("decoder.norm_out.weight", 4), "decoder.conv_norm_out.weight");
    EXPECT_EQ(vae_name_from_bfl("bn.running_var", 4), "bn.running_var");
}

TEST_F(VaeGolden, RejectsUnclaimedAndMisshapenTensors) {
    const Checkpoint diffusers = Checkpoint::open(test::data_path("tiny-vae"));
    const test::TempDir tmp;
    const std::string path = tmp.file("bad_vae.safetensors");
    {
        SafetensorsWriter writer;
        for (const std::string& name : diffusers.names()) writer.add_f32(name, load_f32(diffusers.get(name)));
        const float extra[2] = {1, 2};
        writer.add_f32("decoder.extra.weight", {2}, extra);
        writer.write(path);
        VaeCheckpoint ckpt = VaeCheckpoint::open(path);
        EXPECT_THROW(Flux2Vae::load(ckpt, VaeConfig::infer(ckpt), *backend), Error);
    }
    {
        SafetensorsWriter writer;
        for (const std::string& name : diffusers.names()) {
            Tensor t = load_f32(diffusers.get(name));
            if (name == "decoder.conv_in.weight") t = t.reshape({t.dim(0), t.dim(1), 9, 1});
            writer.add_f32(name, t);
        }
        writer.write(path);
        VaeCheckpoint ckpt = VaeCheckpoint::open(path);
        EXPECT_THROW(Flux2Vae::load(ckpt, VaeConfig::infer(ckpt), *backend), Error);
    }
}

}  // namespace
}  // namespace flux2
