#pragma once
// FLUX.2 transformer tensor names: BFL original -> internal (diffusers). FLUX2_SPEC.md §5, NVFP4_CHECKPOINTS.md §4.
// Rules are chained the way sglang applies them: a block rename first, then ".scale" -> ".weight" for the RMSNorm
// gains. The fused BFL projections keep a fused internal name (attn.to_qkv, attn.to_added_qkv) that the binder
// splits into to_q/to_k/to_v and add_q_proj/add_k_proj/add_v_proj.
#include <optional>
#include <string>

namespace flux2 {

// Strips a ComfyUI "model.diffusion_model." (or a plain "transformer.") prefix.
std::string strip_transformer_prefix(const std::string& name);

// The internal name of a BFL tensor name, or nullopt when no BFL rule applies to it. Prefixes are stripped first.
std::optional<std::string> bfl_to_internal(const std::string& name);

// The BFL spelling of an internal name, for messages about a BFL file (the inverse of bfl_to_internal). A part of a
// fused projection names the fused tensor and its part ("double_blocks.0.img_attn.qkv.weight (K rows)"); a name no
// rule covers comes back unchanged.
std::string internal_to_bfl(const std::string& name);

// The BFL layer of a kohya LoRA layer name with its "lora_unet_" prefix removed ("double_blocks_0_img_attn_qkv" ->
// "double_blocks.0.img_attn.qkv"), or nullopt. kohya writes every "." as "_", which is ambiguous inside names like
// "img_attn", so the name is matched against the BFL layers instead of split.
std::optional<std::string> kohya_to_bfl_layer(const std::string& kohya_layer);

// True when the (prefix-stripped) name is one of the diffusers transformer's own names.
bool is_internal_transformer_name(const std::string& name);

}  // namespace flux2
