#pragma once
// Binds a FLUX.2 transformer checkpoint in any layout users have to internal (diffusers) names:
// BFL single file (bf16, NVFP4 full/mixed, ComfyUI FP8, .comfy_quant markers), diffusers folder,
// ModelOpt folder (hf_quant_config.json), sharded index. Applies the BFL->diffusers renames, splits fused
// img/txt QKV into to_q/to_k/to_v (add_*_proj), swaps the final-layer adaLN halves, resolves each layer's
// quantization format (quant/quant_config.h) and normalizes NVFP4 to the canonical Nvfp4Weight form.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "models/weight_source.h"
#include "quant/linear_weight.h"
#include "quant/quant_config.h"
#include "tensor/tensor.h"

namespace flux2 {

class TransformerCheckpoint : public WeightSource {
public:
    // `path`: file, folder or index.json. A folder holding both `*-mixed.safetensors` and full NVFP4 files uses
    // the mixed one (logged); name a file explicitly to choose.
    static TransformerCheckpoint open(const std::string& path);

    // config.json next to the weights (diffusers / ModelOpt folders, or beside a single file), if any. Beside a
    // single file it is only taken when it describes a Flux2Transformer2DModel (a folder may hold other models).
    const std::optional<nlohmann::json>& config() const { return config_; }
    const std::string& config_path() const { return config_path_; }

    // Tensor names are internal (diffusers) names, e.g. "transformer_blocks.0.attn.to_q.weight".
    bool has(const std::string& name) const override;
    // Logical shape: for an NVFP4 weight [out, in] (not the packed [out, in/2]).
    Shape shape_of(const std::string& name) const override;

    // A linear layer by module name ("transformer_blocks.0.attn.to_q"); throws naming the file, tensor,
    // expected and actual shape when it does not match [out, in].
    LinearWeight take_linear(const std::string& module, int64_t out_features, int64_t in_features) override;
    // A plain float tensor (norm gains), converted to F32.
    Tensor take_f32(const std::string& name, const Shape& expected) override;

    // Throws listing every checkpoint tensor no take_* call claimed (and, when take_* failed on absent names,
    // the missing ones) so that a checkpoint of the wrong model never loads silently.
    void finish() const override;

    std::string describe() const override;  // layout, files, "12 nvfp4 / 4 bf16 / ..." per-format layer counts

    // How every linear was resolved, for `flux2 inspect`: one entry per internal module (fused BFL layers are
    // listed once per split part).
    struct LinearInfo {
        std::string module;             // internal name, e.g. "transformer_blocks.0.attn.to_q"
        std::string checkpoint_module;  // where it is stored, e.g. "double_blocks.0.img_attn.qkv" (rows a..b)
        Shape shape;                    // logical [out, in]
        LayerQuant quant;
    };
    std::vector<LinearInfo> linears() const;
    const QuantConfig& quant() const { return quant_; }
    const Checkpoint& checkpoint() const { return ckpt_; }  // the files as they are, checkpoint names
    const std::string& layout() const { return layout_; }
    // An internal name as this checkpoint spells it (BFL or diffusers, with the file's prefix), for messages.
    std::string checkpoint_name(const std::string& internal) const;

private:
    struct Source;  // how an internal name maps onto checkpoint tensors (defined in the .cpp)
    void add_source(const std::string& internal, std::shared_ptr<Source> source);
    Checkpoint ckpt_;
    std::optional<nlohmann::json> config_;
    std::string config_path_;
    std::map<std::string, std::shared_ptr<Source>> sources_;  // internal tensor name -> source
    mutable std::set<std::string> claimed_;
    mutable std::set<std::string> missing_;  // names take_* was asked for but the checkpoint lacks
    std::string layout_;
    bool bfl_names_ = false;
    std::string key_prefix_;  // "model.diffusion_model." (ComfyUI), "transformer." or ""
    QuantConfig quant_;
};

}  // namespace flux2
