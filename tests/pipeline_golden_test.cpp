// Whole pipelines against diffusers (pipeline-golden.safetensors): given the stored prompt embeddings and initial
// noise, the tiny dev / klein models with the tiny VAE must reproduce the images (<= 1e-4) and latents (<= 1e-5).
#include <gtest/gtest.h>

#include <cstring>

#include "backend/backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/vae/vae.h"
#include "pipeline/flux2_pipeline.h"
#include "golden_data.h"
#include "test_util.h"

namespace flux2 {
namespace {

class PipelineGolden : public ::testing::Test {
protected:
    void SetUp() override {
        backend_ = make_backend({});
        golden_ = SafetensorsFile::open(test::data_path("pipeline-golden.safetensors"));
        vae_ = std::make_unique<Flux2Vae>(Flux2Vae::load(test::data_path("tiny-vae"), *backend_));
    }
    Tensor golden(const std::string& key) const {
        const TensorInfo* t = golden_->find(key);
        EXPECT_NE(t, nullptr) << key;
        return load_f32(*t);
    }
    void expect_close(const Tensor& out, const std::string& key, double tolerance) const {
        Tensor ref = golden(key);
        ASSERT_EQ(out.shape(), ref.shape()) << key;
        EXPECT_LE(test::rel_error(out.to_vector(), ref.to_vector()), tolerance) << key;
    }
    GenerateOutput run(Flux2Variant variant, const std::string& model, const std::string& embeds_prefix, int steps,
                       std::vector<Image> refs = {}) {
        Flux2Transformer t = Flux2Transformer::load(test::data_path(model), *backend_);
        Flux2Pipeline pipeline(variant, t, *vae_);
        GenerateParams p;
        p.width = p.height = 64;
        p.num_steps = steps;
        p.guidance_scale = 4.0f;
        p.initial_noise = golden("dev.latents_in");
        p.reference_images = std::move(refs);
        std::optional<Tensor> negative;
        if (golden_->find(embeds_prefix + ".negative_prompt_embeds"))
            negative = golden(embeds_prefix + ".negative_prompt_embeds");
        return pipeline.generate(p, golden(embeds_prefix + ".prompt_embeds"), negative);
    }

    std::unique_ptr<Backend> backend_;
    std::shared_ptr<SafetensorsFile> golden_;
    std::unique_ptr<Flux2Vae> vae_;
};

TEST_F(PipelineGolden, DevFourSteps) {
    GenerateOutput out = run(Flux2Variant::dev, "tiny-dev-bf16.safetensors", "dev", 4);
    expect_close(out.latents, "dev.steps4.latents_out", 1e-5);
    expect_close(out.images, "dev.steps4.image", 1e-4);
}

TEST_F(PipelineGolden, DevSevenSteps) {
    GenerateOutput out = run(Flux2Variant::dev, "tiny-dev-bf16.safetensors", "dev", 7);
    expect_close(out.latents, "dev.steps7.latents_out", 1e-5);
    expect_close(out.images, "dev.steps7.image", 1e-4);
}

TEST_F(PipelineGolden, DevEditWithReferenceImage) {
    Image img = test::image_from_hwc_bytes(golden("dev_edit.ref_uint8"));
    GenerateOutput out = run(Flux2Variant::dev, "tiny-dev-bf16.safetensors", "dev", 4, {img});
    expect_close(out.images, "dev_edit.steps4.image", 1e-4);
}

TEST_F(PipelineGolden, KleinBaseTrueCfg) {
    GenerateOutput out = run(Flux2Variant::klein_base, "tiny-klein-bf16.safetensors", "klein", 4);
    expect_close(out.images, "klein_base.steps4.image", 1e-4);
}

TEST_F(PipelineGolden, KleinDistilled) {
    GenerateOutput out = run(Flux2Variant::klein_distilled, "tiny-klein-bf16.safetensors", "klein", 4);
    expect_close(out.images, "klein_distilled.steps4.image", 1e-4);
}

TEST_F(PipelineGolden, RejectsSizesNotMultipleOf16) {
    Flux2Transformer t = Flux2Transformer::load(test::data_path("tiny-dev-bf16.safetensors"), *backend_);
    Flux2Pipeline pipeline(Flux2Variant::dev, t, *vae_);
    GenerateParams p;
    p.width = 72;
    p.height = 64;
    p.num_steps = 1;
    EXPECT_THROW(pipeline.generate(p, golden("dev.prompt_embeds"), std::nullopt), Error);
}

}  // namespace
}  // namespace flux2
