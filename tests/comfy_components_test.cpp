// Component resolution for ComfyUI layouts: a models/ folder (diffusion_models/, text_encoders/, vae/, or the older
// unet/ and clip/), the split_files/ of ComfyUI's repos, or a transformer file inside such a folder. Files are empty
// placeholders: resolution only looks at paths. ComfyUI ships no tokenizer, so it comes from the base model.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "pipeline/model_components.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

namespace fs = std::filesystem;

class ComfyComponents : public ::testing::Test {
protected:
    void SetUp() override {
        fs::create_directories(tmp.path() / "base" / "tokenizer");
        std::ofstream(tmp.path() / "base" / "tokenizer" / "tokenizer.json") << "{}";
    }
    std::string touch(const std::string& rel) {
        const fs::path p = tmp.path() / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << "";
        return p.string();
    }
    ComponentArgs args(const std::string& model_rel) const {
        ComponentArgs a;
        a.model_path = tmp.file(model_rel);
        a.base_model_path = tmp.file("base");
        return a;
    }
    test::TempDir tmp;
};

TEST_F(ComfyComponents, ModelsFolderGivesEveryComponentAndTheBaseTokenizer) {
    const std::string dit = touch("models/diffusion_models/flux2_dev_fp8mixed.safetensors");
    const std::string te = touch("models/text_encoders/mistral_3_small_flux2_fp8.safetensors");
    const std::string vae = touch("models/vae/flux2-vae.safetensors");
    touch("models/loras/other.safetensors");
    for (const std::string& model : {"models", "models/diffusion_models/flux2_dev_fp8mixed.safetensors"}) {
        const ComponentPaths p = resolve_components(args(model), /*needs_text_encoder=*/true);
        EXPECT_EQ(p.transformer, dit) << model;
        EXPECT_EQ(p.text_encoder, te) << model;
        EXPECT_EQ(p.vae, vae) << model;
        EXPECT_EQ(p.tokenizer, tmp.file("base/tokenizer")) << model;
        EXPECT_FALSE(p.model_index.has_value()) << model;
    }
}

TEST_F(ComfyComponents, SplitFilesOfComfyReposAndOlderFolderNames) {
    const std::string dit = touch("repo/split_files/diffusion_models/flux2_klein_4b.safetensors");
    const std::string te = touch("repo/split_files/text_encoders/qwen_3_4b.safetensors");
    const std::string vae = touch("repo/split_files/vae/flux2-vae.safetensors");
    ComponentPaths p = resolve_components(args("repo"), true);
    EXPECT_EQ(p.transformer, dit);
    EXPECT_EQ(p.text_encoder, te);
    EXPECT_EQ(p.vae, vae);

    const std::string old_dit = touch("old/unet/flux2.safetensors");
    const std::string old_te = touch("old/clip/qwen.safetensors");
    const std::string old_vae = touch("old/vae/ae.safetensors");
    p = resolve_components(args("old"), true);
    EXPECT_EQ(p.transformer, old_dit);
    EXPECT_EQ(p.text_encoder, old_te);
    EXPECT_EQ(p.vae, old_vae);
}

TEST_F(ComfyComponents, SeveralCandidatesAreListedAndAFlagPicksOne) {
    touch("models/diffusion_models/flux2_dev.safetensors");
    const std::string a = touch("models/text_encoders/mistral_fp8.safetensors");
    touch("models/text_encoders/t5xxl.safetensors");
    touch("models/vae/flux2-vae.safetensors");
    try {
        resolve_components(args("models"), true);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("2 text encoder files in text_encoders/"), std::string::npos) << msg;
        EXPECT_NE(msg.find("t5xxl.safetensors"), std::string::npos) << msg;
        EXPECT_NE(msg.find("--text-encoder"), std::string::npos) << msg;
    }
    ComponentArgs picked = args("models");
    picked.text_encoder_path = a;
    EXPECT_EQ(resolve_components(picked, true).text_encoder, a);

    touch("models/diffusion_models/flux1_dev.safetensors");
    EXPECT_THROW(resolve_components(args("models"), false), Error);
    EXPECT_EQ(resolve_components(args("models/diffusion_models/flux2_dev.safetensors"), false).transformer,
              tmp.file("models/diffusion_models/flux2_dev.safetensors"));
}

TEST_F(ComfyComponents, MissingPartsComeFromTheBaseModelOrAreReported) {
    touch("models/diffusion_models/flux2_dev.safetensors");
    touch("models/text_encoders/mistral.safetensors");
    fs::create_directories(tmp.path() / "base" / "vae");
    EXPECT_EQ(resolve_components(args("models"), true).vae, tmp.file("base/vae"));

    ComponentArgs no_base = args("models");
    no_base.base_model_path = tmp.file("nowhere");
    try {
        resolve_components(no_base, true);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("no tokenizer for the text encoder " + tmp.file("models/text_encoders/mistral.safetensors")),
                  std::string::npos)
            << msg;
        EXPECT_NE(msg.find("no VAE"), std::string::npos) << msg;
        EXPECT_NE(msg.find(tmp.file("models/vae") + "/*.safetensors"), std::string::npos) << msg;
    }
    // Prompt embeddings given: neither the text encoder nor its tokenizer is needed.
    no_base.vae_path = touch("elsewhere/ae.safetensors");
    EXPECT_NO_THROW(resolve_components(no_base, false));
}

TEST_F(ComfyComponents, EmptyModelsFolderSaysWhatItExpected) {
    fs::create_directories(tmp.path() / "models" / "diffusion_models");
    touch("models/text_encoders/qwen.safetensors");
    try {
        resolve_components(args("models"), true);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("without a FLUX.2 transformer"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace flux2
