#pragma once
// Binds a text-encoder checkpoint to the decoder's tensors, whatever the layout:
//   * Qwen3ForCausalLM (HF)                         model.layers.N..., model.embed_tokens.weight
//   * Mistral3ForConditionalGeneration, hub layout   language_model.model.layers.N...
//   * Mistral3ForConditionalGeneration, transformers >= 4.52 layout   model.language_model.layers.N...
//   * ComfyUI single-file text encoders             model.layers.N... (Mistral may be pruned to 30 layers,
//                                                    and carries its tokenizer as the U8 tensor "tekken_model")
// The prefix is found by probing. Linear layers keep their stored format: dense BF16/F16/F32, ComfyUI scaled FP8
// (F8_E4M3 weight + scalar weight_scale or scale_weight) or NVFP4 in the BFL/ComfyUI convention (U8 hi-first codes,
// 128x4-swizzled F8 block scales, weight_scale_2, optional input_scale), normalized to the canonical LinearWeight.
// A layer's declared format (header _quantization_metadata or a .comfy_quant marker) must agree with its tensors.
//
// Internal names are those of a plain Qwen3ForCausalLM / MistralForCausalLM: "model.embed_tokens.weight",
// "model.layers.N.self_attn.q_proj", "model.norm.weight"; "model." stands for whatever prefix the file uses.
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>

#include "io/checkpoint.h"
#include "models/text_encoder/decoder_config.h"
#include "models/weight_source.h"
#include "quant/linear_weight.h"
#include "tensor/tensor.h"

namespace flux2 {

class DecoderCheckpoint : public WeightSource {
public:
    // `path`: a folder (config.json + *.safetensors or an index), a .safetensors file, or an index.json. The
    // config comes from config.json in that folder (or beside the file); without one, the shapes must match a
    // known FLUX.2 text encoder (DecoderConfig::preset), whose constants are then used (logged).
    static DecoderCheckpoint open(const std::string& path);

    const DecoderConfig& config() const { return config_; }
    const std::string& prefix() const { return prefix_; }  // in the file: "model.", "language_model.model.", ...
    const Checkpoint& checkpoint() const { return ckpt_; }

    bool has(const std::string& name) const override;
    // Logical shape: for an NVFP4 weight [out, in] (not the packed [out, in/2]).
    Shape shape_of(const std::string& name) const override;
    // Checks the logical shape [out, in] and normalizes quantized layers to the canonical LinearWeight.
    LinearWeight take_linear(const std::string& module, int64_t out_features, int64_t in_features) override;
    // A float vector or matrix (norm gains), converted to F32 on the host.
    Tensor take_f32(const std::string& name, const Shape& expected) override;
    // A BF16/F16/F32 matrix left in the file mapping (the token embedding table: only the prompt's rows are read;
    // the TensorInfo stays valid while a copy of checkpoint() is alive).
    const TensorInfo& take_mapped(const std::string& name, const Shape& expected);

    // What finish() may leave unclaimed besides lm_head, the Mistral3 vision tower and projector and ComfyUI's
    // tekken_model: decoder layers >= layers_used, and the final norm unless final_norm_used.
    void allow_unused(int64_t layers_used, bool final_norm_used);
    // Throws listing every other tensor that no take_* call claimed; logs how many were skipped.
    void finish() const override;

    std::string describe() const override;  // checkpoint, prefix, per-format layer counts
    // How the file stores `module`'s weight (an internal name): dense, fp8 or nvfp4, from its header alone.
    WeightFormat stored_format(const std::string& module) const;

private:
    std::string file_name(const std::string& internal) const;  // "model.X" -> prefix + "X"
    const TensorInfo& claim(const std::string& file_name);

    Checkpoint ckpt_;
    DecoderConfig config_;
    std::string prefix_;
    int64_t layers_used_ = std::numeric_limits<int64_t>::max();  // until allow_unused: every layer must be claimed
    bool final_norm_used_ = true;
    std::set<std::string> claimed_;
    std::map<std::string, WeightFormat> declared_formats_;  // header _quantization_metadata, by file module name
    std::string declared_in_;
    std::map<std::string, int64_t> format_counts_;
};

}  // namespace flux2
