// The decode half of the pipeline against pipeline-golden.safetensors (made with the tiny VAE): packed latents ->
// unpack -> BatchNorm de-normalization -> unpatchify -> VAE decode -> [0, 1] image (README tolerance 1e-4).
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "models/vae/vae.h"
#include "pipeline/image_ops.h"
#include "pipeline/latents.h"
#include "test_util.h"

namespace flux2 {
namespace {

TEST(PipelineDecode, LatentsToImageMatchesDiffusers) {
    auto backend = make_backend(BackendOptions{});
    const Flux2Vae vae = Flux2Vae::load(test::data_path("tiny-vae"), *backend);
    auto golden = SafetensorsFile::open(test::data_path("pipeline-golden.safetensors"));
    for (const std::string key : {"dev.steps4", "dev.steps7", "dev_edit.steps4"}) {
        const TensorInfo* latents_info = golden->find(key + ".latents_out");
        if (latents_info == nullptr) continue;          // dev_edit stores only its image
        const Tensor tokens = load_f32(*latents_info);  // [1, 16, 128]
        Tensor latents = unpack_latents_with_ids(tokens, image_position_ids(4, 4));
        batch_norm_denormalize(latents, vae.latent_batch_norm());
        const Tensor image = postprocess_to_unit(vae.decode(unpatchify_latents(latents)));
        const Tensor expected = load_f32(*golden->find(key + ".image"));
        ASSERT_EQ(image.shape(), expected.shape()) << key;
        EXPECT_LE(test::rel_error(image.to_vector(), expected.to_vector()), 1e-4) << key;
        // The uint8 form: every pixel within 1 of round(255 x) of the reference.
        const Image rgb = unit_tensor_to_image(image, 0);
        const std::vector<float> ref = expected.to_vector();
        int worst = 0;
        for (size_t i = 0; i < ref.size(); ++i)
            worst = std::max(worst, std::abs(int(rgb.rgb[i]) - int(std::nearbyint(ref[i] * 255.0f))));
        EXPECT_LE(worst, 1) << key;
    }
}

}  // namespace
}  // namespace flux2
