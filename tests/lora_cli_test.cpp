// `flux2 inspect` on LoRA files, end to end: runs the built binary.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>

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
