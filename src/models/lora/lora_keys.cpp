#include "models/lora/lora_keys.h"

#include <array>

#include "core/error.h"
#include "models/names.h"

namespace flux2 {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Suffix {
    const char* text;
    LoraRole role;
    bool kohya_spelling;
};
constexpr std::array<Suffix, 5> kSuffixes{{
    {".lora_A.weight", LoraRole::a, false},
    {".lora_B.weight", LoraRole::b, false},
    {".lora_down.weight", LoraRole::a, true},
    {".lora_up.weight", LoraRole::b, true},
    {".alpha", LoraRole::alpha, true},
}};

// Markers of adapter kinds that are not a plain low-rank pair. Applying only their lora_A/B part (or ignoring
// them) would silently compute something else, so the file is refused.
struct Kind {
    const char* marker;
    bool suffix;  // the marker ends the key (else it may appear anywhere)
    const char* name;
};
constexpr std::array<Kind, 12> kUnsupported{{
    {"lora_magnitude_vector", false, "DoRA (magnitude vector)"},
    {"dora_scale", false, "DoRA (dora_scale)"},
    {"lokr_", false, "LoKr"},
    {"hada_", false, "LoHa"},
    {".lora_mid.", false, "LoCon/LoHa mid (Tucker) factor"},
    {".oft_", false, "OFT"},
    {".diff", true, "full weight difference"},
    {".diff_b", true, "full bias difference"},
    {".lora_A.bias", true, "LoRA bias"},
    {".lora_B.bias", true, "LoRA bias"},
    {".lora_down.bias", true, "LoRA bias"},
    {".lora_up.bias", true, "LoRA bias"},
}};

bool is_text_encoder(const std::string& key) {
    for (const char* p : {"text_encoder", "lora_te"}) {
        if (starts_with(key, p)) return true;
    }
    return false;
}

// Internal modules of an internal (possibly fused) layer name: the BFL fused QKV names split in three.
void set_modules(LoraKey& k, const std::string& internal) {
    auto fused = [&](const char* suffix, std::array<const char*, 3> parts) {
        if (!ends_with(internal, suffix)) return false;
        const std::string base = internal.substr(0, internal.size() - std::string(suffix).size());
        for (const char* p : parts) k.modules.push_back(base + p);
        return true;
    };
    if (fused("attn.to_qkv", {"attn.to_q", "attn.to_k", "attn.to_v"})) return;
    if (fused("attn.to_added_qkv", {"attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"})) return;
    k.modules.push_back(internal);
}

}  // namespace

bool is_lora_pair_key(const std::string& key) {
    for (const Suffix& s : kSuffixes) {
        if (s.role != LoraRole::alpha && ends_with(key, s.text)) return true;
    }
    return false;
}

std::optional<LoraKey> parse_lora_key(const std::string& path, const std::string& key) {
    if (is_text_encoder(key)) return std::nullopt;
    for (const Kind& kind : kUnsupported) {
        const bool found = kind.suffix ? ends_with(key, kind.marker) : key.find(kind.marker) != std::string::npos;
        check(!found, path, ": tensor '", key, "' is a ", kind.name,
              " adapter, which flux2 does not apply (supported: LoRA pairs lora_A/lora_B or lora_down/lora_up, "
              "with optional .alpha)");
    }
    LoraKey k;
    const Suffix* suffix = nullptr;
    for (const Suffix& s : kSuffixes) {
        if (ends_with(key, s.text)) suffix = &s;
    }
    check(suffix != nullptr, path, ": tensor '", key, "' is not part of a LoRA pair (expected a name ending in ",
          ".lora_A.weight, .lora_B.weight, .lora_down.weight, .lora_up.weight or .alpha)");
    k.role = suffix->role;
    k.layer = key.substr(0, key.size() - std::string(suffix->text).size());

    auto no_layer = [&](const std::string& what) {
        fail(path, ": tensor '", key, "': ", what,
             " names no FLUX.2 transformer layer (docs/LORA.md lists the layers)");
    };
    std::string name = k.layer;
    std::optional<std::string> bfl;  // the layer in BFL spelling, when the file uses it
    if (starts_with(name, "lora_unet_")) {
        k.format = LoraFormat::kohya;
        bfl = kohya_to_bfl_layer(name.substr(10));
        if (!bfl) no_layer("kohya layer '" + name.substr(10) + "'");
    } else {
        k.format = LoraFormat::diffusers;  // also bare diffusers module names (no prefix)
        for (const char* p : {"base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer."}) {
            if (!starts_with(name, p)) continue;
            const std::string prefix = p;
            if (prefix == "base_model.model.")
                k.format = LoraFormat::peft_bfl;
            else if (prefix != "transformer.")
                k.format = suffix->kohya_spelling ? LoraFormat::bfl_kohya : LoraFormat::bfl;
            name = name.substr(prefix.size());
            break;
        }
        // Under any prefix a layer may be spelt the BFL way or the diffusers way (ai-toolkit also writes
        // diffusion_model.transformer_blocks...). The BFL rules never match a diffusers name, while some BFL names
        // share a diffusers prefix (double_stream_modulation_img.lin), so BFL is tried first.
        if (!bfl_to_internal(name + ".weight") && is_internal_transformer_name(name + ".weight")) {
            set_modules(k, name);
            return k;
        }
        bfl = name;
    }
    std::optional<std::string> internal = bfl_to_internal(*bfl + ".weight");
    if (!internal) no_layer("layer '" + *bfl + "'");
    const std::string module = internal->substr(0, internal->size() - 7);  // ".weight"
    set_modules(k, module);
    // BFL stores the final modulation as (shift, scale); the internal norm_out.linear is diffusers' (scale, shift).
    k.swap_halves = module == "norm_out.linear";
    return k;
}

}  // namespace flux2
