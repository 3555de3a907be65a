// The demo LoRA (assets/demo-lora, docs/DEMO_MODEL.md "The demo LoRA") end to end: `flux2 generate --lora` on the
// trained demo model turns its plain background into horizontal stripes, from each of the four file layouts alike.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "cli_runner.h"
#include "io/image.h"

namespace flux2::test {
namespace {

const std::string kAssets = FLUX2_ASSETS_DIR;

// How striped an image is: per row, the median grey level (the default prompt leaves every row mostly background,
// so shapes do not move it); then the mean change between rows half a stripe period (8 px) apart. A plain
// background scores ~0, the LoRA's bands several grey levels.
double stripe_strength(const Image& img) {
    std::vector<double> row_median(img.height);
    std::vector<double> grey(img.width);
    for (int y = 0; y < img.height; ++y) {
        for (int x = 0; x < img.width; ++x) {
            const uint8_t* p = img.pixel(x, y);
            grey[x] = (p[0] + p[1] + p[2]) / 3.0;
        }
        std::nth_element(grey.begin(), grey.begin() + img.width / 2, grey.end());
        row_median[y] = grey[img.width / 2];
    }
    double sum = 0;
    for (int y = 0; y + 8 < img.height; ++y) sum += std::abs(row_median[y] - row_median[y + 8]);
    return sum / (img.height - 8);
}

class CliDemoLora : public Cli {
protected:
    // The demo model's default prompt at 128x128, 10 steps, a fixed seed; `lora` empty for none.
    Image generate(const std::string& name, const std::string& lora) {
        std::vector<std::string> args = {"generate",
                                         "--model-path",
                                         kAssets + "/demo-model",
                                         "--prompt",
                                         "a large red circle on the left and a small blue square at the top right, "
                                         "on a yellow background",
                                         "--width",
                                         "128",
                                         "--height",
                                         "128",
                                         "--num-inference-steps",
                                         "10",
                                         "--seed",
                                         "7",
                                         "--output-path",
                                         file(name + ".png")};
        if (!lora.empty()) {
            args.push_back("--lora");
            args.push_back(lora);
        }
        const RunResult r = flux2(args);
        EXPECT_EQ(r.exit_code, 0) << r;
        if (!lora.empty()) EXPECT_TRUE(contains(r.err, "LoRA")) << r.err;
        return read_image(file(name + ".png"));
    }
};

TEST_F(CliDemoLora, StripesTheBackgroundFromEveryLayout) {
    const Image base = generate("base", "");
    const double plain = stripe_strength(base);
    EXPECT_LT(plain, 3.0);
    Image first;
    for (const char* layout : {"diffusers", "bfl", "peft-bfl", "kohya"}) {
        SCOPED_TRACE(layout);
        const Image img =
            generate(layout, kAssets + "/demo-lora/demo-stripes-lora-" + std::string(layout) + ".safetensors");
        const double striped = stripe_strength(img);
        std::printf("demo LoRA (%s): stripe strength %.2f grey levels, without it %.2f\n", layout, striped, plain);
        EXPECT_GT(striped, 8.0);
        // All four files hold the same adapter (q/k/v separate or fused block-diagonally, alpha in the header, in
        // lora_A or as .alpha): the pictures agree to rounding.
        if (first.rgb.empty()) {
            first = img;
            continue;
        }
        ASSERT_EQ(img.rgb.size(), first.rgb.size());
        int worst = 0;
        for (size_t i = 0; i < img.rgb.size(); ++i) worst = std::max(worst, std::abs(img.rgb[i] - first.rgb[i]));
        EXPECT_LE(worst, 2);
    }
}

TEST_F(CliDemoLora, StrengthZeroChangesNoPixel) {
    const Image base = generate("base", "");
    const Image off = generate("off", kAssets + "/demo-lora/demo-stripes-lora-kohya.safetensors:0");
    EXPECT_EQ(off.rgb, base.rgb);
}

}  // namespace
}  // namespace flux2::test
