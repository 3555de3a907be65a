// `flux2 forward --lora` and `flux2 inspect` on LoRA files, end to end: runs the built binary.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "golden_data.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "temp_dir.h"
#include "test_util.h"

namespace flux2 {
namespace {

// Runs `flux2 ARGS` with stderr merged into the returned text.
std::string run(const std::string& args, int* status) {
    const std::string cmd = std::string(FLUX2_BINARY) + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf;
    while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
    *status = pclose(p);
    return out;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string lora(const std::string& file) { return test::data_path("lora/" + file); }

// case0 of tiny-klein-golden as `flux2 forward` inputs.
std::string write_inputs(const test::TempDir& dir) {
    auto g = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
    SafetensorsWriter w;
    for (const char* key : {"hidden_states", "encoder_hidden_states", "timestep", "img_ids", "txt_ids"}) {
        w.add_f32(key, load_f32(test::golden_tensor(*g, std::string("case0.") + key)));
    }
    w.write(dir.file("inputs.safetensors"));
    return dir.file("inputs.safetensors");
}

TEST(LoraCli, ForwardAppliesLorasWithStrengths) {
    test::TempDir dir;
    // The CPU backend, the reference the 1e-5 bound holds for (on the GPU machine the default device is the GPU).
    const std::string base = "forward --device cpu --model " + test::data_path("tiny-klein-nvfp4.safetensors") +
                             " --inputs " + write_inputs(dir) + " --output " + dir.file("out.safetensors");
    int status = 0;
    const std::string log = run(base + " --lora " + lora("tiny-klein-lora1-kohya.safetensors") + ":0.7 --lora " +
                                    lora("tiny-klein-lora2-diffusers.safetensors") + ":0.4",
                                &status);
    ASSERT_EQ(status, 0) << log;
    EXPECT_TRUE(contains(log, "+ lora r")) << log;  // the linear paths show the branch
    auto out = SafetensorsFile::open(dir.file("out.safetensors"));
    auto golden = SafetensorsFile::open(lora("tiny-klein-lora-golden.safetensors"));
    EXPECT_LE(test::rel_error(read_f32(test::golden_tensor(*out, "output")),
                              read_f32(test::golden_tensor(*golden, "case0.out_nvfp4_w4a16_lora1_0p7_lora2_0p4"))),
              1e-5);

    // A LoRA for tiny-dev on tiny-klein: refused naming the file and a key; nothing is written.
    std::filesystem::remove(dir.file("out.safetensors"));
    const std::string err = run(base + " --lora " + lora("tiny-dev-lora1-bfl.safetensors"), &status);
    EXPECT_NE(status, 0) << err;
    EXPECT_TRUE(contains(err, "tiny-dev-lora1-bfl.safetensors")) << err;
    EXPECT_TRUE(contains(err, "diffusion_model.double_blocks.0.")) << err;
    EXPECT_FALSE(std::filesystem::exists(dir.file("out.safetensors")));
}

// generate --lora on the tiny dev pipeline: strength 0 is the base pipeline exactly (pipeline-golden), strength 1
// changes the latents, and the PNG records the LoRAs.
TEST(LoraCli, GenerateAppliesLoras) {
    test::TempDir dir;
    auto g = SafetensorsFile::open(test::data_path("pipeline-golden.safetensors"));
    SafetensorsWriter embeds, noise;
    embeds.add_f32("prompt_embeds", load_f32(test::golden_tensor(*g, "dev.prompt_embeds")));
    embeds.write(dir.file("embeds.safetensors"));
    noise.add_f32("latents", load_f32(test::golden_tensor(*g, "dev.latents_in")));
    noise.write(dir.file("noise.safetensors"));
    auto latents = [&](const std::string& strength) {
        const std::string args =
            "generate --device cpu --model-path " + test::data_path("tiny-dev-bf16.safetensors") + " --vae-path " +
            test::data_path("tiny-vae") + " --prompt-embeds " + dir.file("embeds.safetensors") + " --initial-noise " +
            dir.file("noise.safetensors") + " --width 64 --height 64 --num-inference-steps 4 --guidance-scale 4" +
            " --save-latents " + dir.file("latents.safetensors") + " --output-path " + dir.file("out.png") +
            " --lora " + lora("tiny-dev-lora1-kohya.safetensors") + ":" + strength;
        int status = 0;
        const std::string log = run(args, &status);
        EXPECT_EQ(status, 0) << log;
        auto f = SafetensorsFile::open(dir.file("latents.safetensors"));
        return read_f32(test::golden_tensor(*f, "latents"));
    };
    const std::vector<float> ref = read_f32(test::golden_tensor(*g, "dev.steps4.latents_out"));
    EXPECT_LE(test::rel_error(latents("0"), ref), 1e-5);
    EXPECT_GT(test::rel_error(latents("1"), ref), 1e-2);
    ImageText text;
    read_image(dir.file("out.png"), &text);
    EXPECT_EQ(text["loras"], lora("tiny-dev-lora1-kohya.safetensors") + ":1");
}

TEST(LoraCli, InspectDescribesALora) {
    int status = 0;
    const std::string out = run("inspect " + lora("tiny-klein-lora1-kohya.safetensors"), &status);
    ASSERT_EQ(status, 0) << out;
    for (const char* part : {"lora: kohya format, 17 layers", "rank 8", "alpha 6 (given)", "scale alpha/rank 0.75",
                             "fits: none of the FLUX.2 models", "lora_unet_double_blocks_0_img_attn_qkv",
                             "transformer_blocks.0.attn.to_q transformer_blocks.0.attn.to_k"}) {
        EXPECT_TRUE(contains(out, part)) << part << "\n" << out;
    }
    EXPECT_FALSE(contains(out, "not readable as a FLUX.2 transformer")) << out;
}

}  // namespace
}  // namespace flux2
