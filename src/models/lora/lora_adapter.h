#pragma once
// A LoRA file read once into model-independent terms: each low-rank pair addressed to an internal (diffusers)
// module, with its alpha / rank scale. docs/LORA.md lists the formats and key maps. Reading checks everything a
// file alone can show (pairs complete, finite values, supported kinds, names that map to a FLUX.2 layer); whether
// the shapes fit a model is checked when the adapter is attached (lora_attach.h).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace flux2 {

enum class LoraFormat {
    diffusers,  // transformer.<module>.lora_A/lora_B.weight, alpha in __metadata__["lora_adapter_metadata"]
    bfl,        // diffusion_model.<BFL layer>.lora_A/lora_B.weight (ai-toolkit), alpha/rank baked into A
    peft_bfl,   // base_model.model.<BFL layer>.lora_A/lora_B.weight (PEFT save of a BFL-named model)
    kohya,      // lora_unet_<BFL layer with "_">.lora_down/lora_up.weight + .alpha
    bfl_kohya,  // diffusion_model.<BFL layer>.lora_down/lora_up.weight + .alpha (what ComfyUI reads)
};
const char* lora_format_name(LoraFormat format);

// One low-rank pair on (rows of) one internal module: delta y = scale * B (A x).
struct LoraTerm {
    std::string module;  // e.g. "transformer_blocks.0.attn.to_q"
    std::string key;     // the file's A tensor, named in errors
    int64_t rank = 0, in_features = 0, out_features = 0;
    float scale = 1.0f;  // alpha / rank (alpha / sqrt(rank) for rsLoRA)
    // [rank, in]; the q, k and v terms of one fused BFL qkv layer share one A (attached as one rank-r pair).
    std::shared_ptr<const std::vector<float>> a;
    std::vector<float> b;  // [out, rank]: this module's rows of the file's B
};

// One layer as the file stores it (what `flux2 inspect` lists).
struct LoraLayer {
    std::string name;  // the file's layer stem, e.g. "lora_unet_double_blocks_0_img_attn_qkv"
    Shape a_shape, b_shape;
    float alpha = 0, scale = 1;
    bool alpha_given = false;          // from a .alpha tensor or the PEFT metadata (else alpha = rank)
    std::vector<std::string> modules;  // internal modules it maps to
};

struct LoraAdapter {
    std::string path;
    std::vector<LoraFormat> formats;  // the key formats found (one for every file seen so far)
    std::vector<LoraLayer> layers;
    std::vector<LoraTerm> terms;
    int64_t skipped_text_encoder_tensors = 0;

    std::string format_label() const;  // "kohya", "diffusers+bfl", ...
};

// Reads and checks a LoRA safetensors file; throws an Error naming the file and the offending key. Text-encoder
// tensors are counted, skipped and reported in one warning.
LoraAdapter read_lora(const std::string& path);

// Whether a header looks like a LoRA (any tensor ending in lora_A/lora_B/lora_down/lora_up.weight).
bool has_lora_keys(const std::vector<std::string>& tensor_names);

}  // namespace flux2
