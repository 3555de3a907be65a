#include "models/flux2/flux2_synthetic.h"

#include <cmath>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/normal_rng.h"
#include "io/safetensors.h"
#include "quant/nvfp4.h"
#include "quant/nvfp4_quantizer.h"

namespace flux2 {

namespace {
// Each tensor draws its own seed from the writer's sequence, then fills in parallel.
std::vector<float> fill(NormalRng& rng, int64_t n, float mean, float stddev) {
    std::vector<float> v(n);
    fill_normal(v.data(), n, rng.bits(), mean, stddev);
    return v;
}

class SyntheticWriter {
public:
    SyntheticWriter(uint64_t seed) : rng_(seed) {}

    void bf16_linear(const std::string& name, int64_t out, int64_t in, float gain = 1.0f) {
        auto w = fill(rng_, out * in, 0.0f, gain / std::sqrt(static_cast<float>(in)));
        writer_.add_bf16(name + ".weight", {out, in}, w.data());
    }
    void gain(const std::string& name, int64_t n) {
        auto w = fill(rng_, n, 1.0f, 0.1f);
        writer_.add_bf16(name, {n}, w.data());
    }
    void nvfp4_linear(const std::string& name, int64_t out, int64_t in, bool with_input_scale) {
        auto w = fill(rng_, out * in, 0.0f, 1.0f / std::sqrt(static_cast<float>(in)));
        Nvfp4Weight q = quantize_nvfp4_weight(w.data(), out, in);
        writer_.add(name + ".weight", DType::U8, {out, in / 2}, q.codes.data(), q.codes.size());
        auto swizzled = swizzle_scales(q.scales.data(), out, in / kNvfp4Block);
        writer_.add(name + ".weight_scale", DType::F8_E4M3, {round_up(out, 128), round_up(in / kNvfp4Block, 4)},
                    swizzled.data(), swizzled.size());
        writer_.add_f32(name + ".weight_scale_2", {}, &q.weight_scale_2);
        if (with_input_scale) {
            // A calibration amax of 8 for unit-variance activations: a plausible static scale.
            const float input_scale = 8.0f / (kE4m3Max * kE2m1Max);
            writer_.add_f32(name + ".input_scale", {}, &input_scale);
        }
        layers_[name] = {{"format", "nvfp4"}};
    }
    void write(const std::string& path) {
        nlohmann::json meta = {{"format_version", "1.0"}, {"layers", layers_}};
        writer_.set_metadata("_quantization_metadata", meta.dump());
        writer_.set_metadata("flux2cpp_synthetic", "random weights: images are noise");
        writer_.write(path);
    }

private:
    NormalRng rng_;
    SafetensorsWriter writer_;
    nlohmann::json layers_ = nlohmann::json::object();
};
}  // namespace

void write_synthetic_transformer(const std::string& path, const Flux2Config& c, uint64_t seed) {
    const int64_t D = c.inner_dim(), M = c.mlp_hidden(), Dh = c.attention_head_dim;
    SyntheticWriter w(seed);
    w.bf16_linear("img_in", D, c.in_channels);
    w.bf16_linear("txt_in", D, c.joint_attention_dim);
    w.bf16_linear("time_in.in_layer", D, c.timestep_guidance_channels);
    w.bf16_linear("time_in.out_layer", D, D);
    if (c.guidance_embeds) {
        w.bf16_linear("guidance_in.in_layer", D, c.timestep_guidance_channels);
        w.bf16_linear("guidance_in.out_layer", D, D);
    }
    // Small modulation weights keep (1 + scale) and the gates near their identity values.
    w.bf16_linear("double_stream_modulation_img.lin", 6 * D, D, 0.2f);
    w.bf16_linear("double_stream_modulation_txt.lin", 6 * D, D, 0.2f);
    w.bf16_linear("single_stream_modulation.lin", 3 * D, D, 0.2f);
    for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string p = str("double_blocks.", i, ".");
        for (const char* stream : {"img", "txt"}) {
            const std::string s = p + stream;
            w.bf16_linear(s + "_attn.qkv", 3 * D, D);
            w.bf16_linear(s + "_attn.proj", D, D);
            w.gain(s + "_attn.norm.query_norm.scale", Dh);
            w.gain(s + "_attn.norm.key_norm.scale", Dh);
            // The mixed file's txt_mlp layers carry no input_scale (NVFP4_CHECKPOINTS.md §9).
            const bool static_scale = std::string(stream) == "img";
            w.nvfp4_linear(s + "_mlp.0", 2 * M, D, static_scale);
            w.nvfp4_linear(s + "_mlp.2", D, M, static_scale);
        }
    }
    for (int64_t i = 0; i < c.num_single_layers; ++i) {
        const std::string p = str("single_blocks.", i, ".");
        w.nvfp4_linear(p + "linear1", 3 * D + 2 * M, D, true);
        w.nvfp4_linear(p + "linear2", D, D + M, true);
        w.gain(p + "norm.query_norm.scale", Dh);
        w.gain(p + "norm.key_norm.scale", Dh);
    }
    w.bf16_linear("final_layer.adaLN_modulation.1", 2 * D, D, 0.2f);
    w.bf16_linear("final_layer.linear", c.out_channels, D);
    w.write(path);
}

}  // namespace flux2
