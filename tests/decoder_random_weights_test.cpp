// The in-memory random text-encoder weights of `flux2 bench --text-encoder` (decoder_random_weights.h): every
// linear in the asked format with a trained layer's spread, the encoder runs on them with finite outputs of a sane
// size, the same seed gives the same weights; and the bench's argument checks.
#include "models/text_encoder/decoder_random_weights.h"

#include <gtest/gtest.h>

#include <cmath>

#include "backend/backend.h"
#include "cli_runner.h"
#include "models/text_encoder/text_encoder.h"
#include "quant/linear_weight.h"

namespace flux2 {
namespace {

DecoderConfig small_mistral() {
    DecoderConfig c = DecoderConfig::preset("mistral-small-3");
    c.vocab_size = 300;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_hidden_layers = 4;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    return c;
}

TEST(RandomDecoderWeights, EveryFormatLoadsAndEncodes) {
    auto backend = make_backend(BackendOptions{});
    TokenBatch tokens;
    tokens.batch = 1;
    tokens.length = 6;
    tokens.ids = {1, 17, 42, 99, 250, 3};
    tokens.attention_mask = std::vector<int64_t>(6, 1);
    for (const WeightFormat format : {WeightFormat::dense, WeightFormat::fp8, WeightFormat::nvfp4}) {
        RandomDecoderWeights weights(format, 7);
        const LinearWeight w = weights.take_linear("model.layers.0.mlp.up_proj", 128, 64);
        EXPECT_EQ(w.format, format);
        const std::vector<float> v = dequantize(w);
        double sum2 = 0;
        for (float x : v) sum2 += static_cast<double>(x) * x;
        const double std = std::sqrt(sum2 / v.size());
        EXPECT_NEAR(std, 1.0 / std::sqrt(64.0), 0.35 / std::sqrt(64.0)) << weight_format_name(format);
        RandomDecoderWeights again(format, 7);
        EXPECT_EQ(dequantize(again.take_linear("model.layers.0.mlp.up_proj", 128, 64)), v);

        RandomDecoderWeights model_weights(format, 7);
        const TextEncoder te = TextEncoder::load(model_weights, small_mistral(), {1, 2, 3}, *backend);
        const std::vector<float> out = te.encode(tokens).to_vector();
        ASSERT_EQ(out.size(), 6u * 3 * 64);
        double out2 = 0;
        for (float x : out) {
            ASSERT_TRUE(std::isfinite(x)) << weight_format_name(format);
            out2 += static_cast<double>(x) * x;
        }
        const double rms = std::sqrt(out2 / out.size());
        EXPECT_GT(rms, 1e-3) << weight_format_name(format);
        EXPECT_LT(rms, 1e3) << weight_format_name(format);
        EXPECT_NE(model_weights.describe().find("random weights"), std::string::npos);
    }
}

using test::Cli;
using test::contains;

TEST_F(Cli, BenchTextEncoderRefusesUnknownEncodersAndFormats) {
    const auto preset = flux2({"bench", "--text-encoder", "llama-7b", "--device", "cpu"});
    EXPECT_NE(preset.exit_code, 0);
    EXPECT_TRUE(contains(preset.err, "llama-7b")) << preset.err;
    const auto format = flux2(
        {"bench", "--text-encoder", "mistral-small-3", "--text-encoder-precision", "bf16,int4", "--device", "cpu"});
    EXPECT_NE(format.exit_code, 0);
    EXPECT_TRUE(contains(format.err, "expected bf16, fp8 or fp4, got 'int4'")) << format.err;
}

}  // namespace
}  // namespace flux2
