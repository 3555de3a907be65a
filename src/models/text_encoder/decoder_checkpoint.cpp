#include "models/text_encoder/decoder_checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <optional>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "quant/nvfp4.h"

namespace fs = std::filesystem;

namespace flux2 {

namespace {

constexpr const char* kInternalPrefix = "model.";

// Where the language model sits in each known layout; probed with its embedding table.
const char* const kPrefixes[] = {"model.language_model.", "language_model.model.", "model."};

// Tensors of the checkpoint a text encoder never reads (matched on the full name).
const char* const kUnusedPrefixes[] = {"lm_head.",
                                       "language_model.lm_head.",
                                       "vision_tower.",
                                       "model.vision_tower.",
                                       "multi_modal_projector.",
                                       "model.multi_modal_projector."};
// ComfyUI keeps the Mistral tokenizer inside the weights ("tekken_model") and marks old scaled-FP8 files with an
// empty "scaled_fp8" tensor; the per-layer scales are what this loader reads.
const char* const kUnusedNames[] = {"tekken_model", "scaled_fp8"};

std::optional<nlohmann::json> read_config(const fs::path& file) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) return std::nullopt;
    return read_json_file(file.string());
}

std::string quoted_list(const std::vector<std::string>& names, size_t limit) {
    std::string s;
    for (size_t i = 0; i < names.size() && i < limit; ++i) s += str(i ? ", " : "", names[i]);
    if (names.size() > limit) s += str(", ... (", names.size(), " in all)");
    return s;
}

float read_scalar(const TensorInfo& t) {
    check(shape_numel(t.shape) == 1 && is_float_dtype(t.dtype), t.file, ": ", t.name,
          " must be a single float (scale), got ", dtype_name(t.dtype), " ", shape_str(t.shape));
    return read_f32(t)[0];
}

std::vector<uint8_t> copy_bytes(const TensorInfo& t) {
    check(t.data != nullptr, t.file, ": ", t.name, " was opened header-only");
    return std::vector<uint8_t>(t.data, t.data + t.nbytes);
}

// "nvfp4" / "float8_e4m3fn" as ComfyUI spells formats in _quantization_metadata and .comfy_quant markers.
WeightFormat parse_declared_format(const std::string& format, const std::string& where) {
    if (format == "nvfp4") return WeightFormat::nvfp4;
    if (format == "float8_e4m3fn") return WeightFormat::fp8;
    fail(where, ": quantization format \"", format, "\" is not supported for text encoders (nvfp4, float8_e4m3fn)");
}

// Picks the preset whose family and hidden size match the tensors (ComfyUI files have no config.json).
DecoderConfig infer_config(const Checkpoint& ckpt, const std::string& prefix, const std::string& origin) {
    const TensorInfo& embed = ckpt.get(prefix + "embed_tokens.weight");
    check(embed.shape.size() == 2, origin, ": ", embed.name, " must be 2-D, got ", shape_str(embed.shape));
    const bool qk_norm = ckpt.find(prefix + "layers.0.self_attn.q_norm.weight") != nullptr;
    const int64_t hidden = embed.shape[1];
    std::string name;
    if (qk_norm && hidden == 2560) name = "qwen3-4b";
    if (qk_norm && hidden == 4096) name = "qwen3-8b";
    if (!qk_norm && hidden == 5120) name = "mistral-small-3";
    check(!name.empty(), origin, ": no config.json, and a ", qk_norm ? "Qwen3-style" : "Mistral-style",
          " decoder with hidden size ", hidden,
          " is none of FLUX.2's text encoders (Qwen3-4B, Qwen3-8B, Mistral-Small-3.x); put its config.json beside it");
    DecoderConfig c = DecoderConfig::preset(name);
    log_info(origin, " has no config.json: using the ", name, " constants (matched by hidden size ", hidden, ")");
    return c;
}

}  // namespace

DecoderCheckpoint DecoderCheckpoint::open(const std::string& path) {
    DecoderCheckpoint d;
    d.ckpt_ = Checkpoint::open(path);
    const std::string origin = d.ckpt_.describe();

    std::vector<std::string> found;
    for (const char* p : kPrefixes)
        if (d.ckpt_.find(std::string(p) + "embed_tokens.weight")) found.push_back(p);
    check(!found.empty(), origin, ": no text encoder embedding table (looked for embed_tokens.weight under ",
          kPrefixes[0], ", ", kPrefixes[1], " and ", kPrefixes[2], ")");
    check(found.size() == 1, origin, ": embedding tables under several prefixes (", quoted_list(found, 3),
          "); cannot tell which is the language model");
    d.prefix_ = found[0];

    // Per-layer formats from the header (merged over shards by Checkpoint), checked against each layer's tensors.
    auto meta = d.ckpt_.metadata().find("_quantization_metadata");
    if (meta != d.ckpt_.metadata().end()) {
        d.declared_in_ = origin + ": __metadata__._quantization_metadata";
        const nlohmann::json q = parse_json_strict(meta->second.data(), meta->second.size(), d.declared_in_);
        if (q.is_object() && q.contains("layers")) {
            check(q["layers"].is_object(), d.declared_in_, ": \"layers\" must be an object");
            for (const auto& [layer, entry] : q["layers"].items()) {
                check(entry.is_object() && entry.contains("format") && entry["format"].is_string(), d.declared_in_,
                      ": layer ", layer, " has no \"format\"");
                d.declared_formats_[layer] = parse_declared_format(entry["format"], d.declared_in_);
            }
        }
    }

    std::error_code ec;
    const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
    const fs::path config_file = dir / "config.json";
    // ModelOpt-style exports pack NVFP4 low-nibble-first with row-major scales; read with this binder's BFL/ComfyUI
    // conventions they would load as garbage, so they are refused until the shared quantization resolver is used.
    check(!fs::exists(dir / "hf_quant_config.json", ec), origin, ": ", (dir / "hf_quant_config.json").string(),
          " (ModelOpt quantization) is not supported for text encoders");
    if (auto json = read_config(config_file)) {
        check(!json->contains("quantization_config"), config_file.string(),
              ": quantization_config (ModelOpt / compressed-tensors exports) is not supported for text encoders");
        d.config_ = DecoderConfig::from_json(*json, config_file.string());
    } else {
        d.config_ = infer_config(d.ckpt_, d.prefix_, origin);
    }
    return d;
}

WeightFormat DecoderCheckpoint::stored_format(const std::string& module) const {
    const std::string name = file_name(module + ".weight");
    const TensorInfo* t = ckpt_.find(name);
    check(t != nullptr, describe(), ": no tensor ", name);
    if (t->dtype == DType::U8) return WeightFormat::nvfp4;
    if (t->dtype == DType::F8_E4M3) return WeightFormat::fp8;
    return WeightFormat::dense;
}

std::string DecoderCheckpoint::file_name(const std::string& internal) const {
    check(internal.starts_with(kInternalPrefix), "text encoder weight name '", internal, "' does not start with ",
          kInternalPrefix);
    return prefix_ + internal.substr(std::string(kInternalPrefix).size());
}

const TensorInfo& DecoderCheckpoint::claim(const std::string& name) {
    const TensorInfo& t = ckpt_.get(name);
    claimed_.insert(name);
    return t;
}

bool DecoderCheckpoint::has(const std::string& name) const { return ckpt_.find(file_name(name)) != nullptr; }

Shape DecoderCheckpoint::shape_of(const std::string& name) const {
    const TensorInfo& t = ckpt_.get(file_name(name));
    const std::string module = file_name(name).substr(0, file_name(name).size() - std::string(".weight").size());
    const bool nvfp4 = name.ends_with(".weight") && t.dtype == DType::U8 && t.shape.size() == 2 &&
                       ckpt_.find(module + ".weight_scale") != nullptr;
    return nvfp4 ? Shape{t.shape[0], 2 * t.shape[1]} : t.shape;
}

LinearWeight DecoderCheckpoint::take_linear(const std::string& module, int64_t out, int64_t in) {
    const std::string full = file_name(module);
    const TensorInfo& w = claim(full + ".weight");
    LinearWeight lw;
    lw.name = full;
    lw.out_features = out;
    lw.in_features = in;
    auto expect_shape = [&](const TensorInfo& t, const Shape& shape, const char* what) {
        check(t.shape == shape, t.file, ": ", t.name, " (", what, ") has shape ", shape_str(t.shape), ", expected ",
              shape_str(shape), " for a [", out, ", ", in, "] linear layer");
    };
    auto optional = [&](const std::string& name) -> const TensorInfo* {
        const TensorInfo* t = ckpt_.find(name);
        if (t) claimed_.insert(name);
        return t;
    };

    if (is_float_dtype(w.dtype)) {
        expect_shape(w, {out, in}, "dense weight");
        check(w.dtype != DType::F64, w.file, ": ", w.name, " is F64; linear weights must be BF16, F16 or F32");
        lw.format = WeightFormat::dense;
        lw.dense.dtype = w.dtype;
        lw.dense.bytes = copy_bytes(w);
    } else if (w.dtype == DType::U8) {
        check(in % kNvfp4Block == 0, w.file, ": NVFP4 layer ", full, " has in_features ", in, ", not a multiple of ",
              kNvfp4Block);
        expect_shape(w, {out, in / 2}, "NVFP4 codes");
        const TensorInfo& scale = claim(full + ".weight_scale");
        check(scale.dtype == DType::F8_E4M3, scale.file, ": ", scale.name, " must be F8_E4M3, got ",
              dtype_name(scale.dtype));
        const int64_t blocks = in / kNvfp4Block;
        expect_shape(scale, {round_up(out, 128), round_up(blocks, 4)}, "128x4-swizzled NVFP4 block scales");
        check(ckpt_.find(full + ".pre_quant_scale") == nullptr, w.file, ": ", full,
              ".pre_quant_scale (AWQ-style smoothing) is not supported");
        lw.format = WeightFormat::nvfp4;
        lw.nvfp4.codes = copy_bytes(w);
        lw.nvfp4.scales = unswizzle_scales(scale.data, out, blocks);
        lw.nvfp4.weight_scale_2 = read_scalar(claim(full + ".weight_scale_2"));
        if (const TensorInfo* s = optional(full + ".input_scale")) lw.nvfp4.input_scale = read_scalar(*s);
    } else if (w.dtype == DType::F8_E4M3) {
        expect_shape(w, {out, in}, "FP8 weight");
        const TensorInfo* a = optional(full + ".weight_scale");
        const TensorInfo* b = optional(full + ".scale_weight");  // older ComfyUI spelling
        check((a != nullptr) != (b != nullptr), w.file, ": FP8 layer ", full,
              " needs exactly one of .weight_scale / .scale_weight");
        lw.format = WeightFormat::fp8;
        lw.fp8.codes = copy_bytes(w);
        lw.fp8.scale = read_scalar(a ? *a : *b);
        // Activations stay unquantized (W8A16), so a stored activation scale is read for validity only.
        for (const char* s : {".input_scale", ".scale_input"})
            if (const TensorInfo* t = optional(full + s)) {
                read_scalar(*t);
                log_debug(full, s, " is not used: FP8 layers run with unquantized activations");
            }
    } else {
        fail(w.file, ": ", w.name, " has dtype ", dtype_name(w.dtype),
             "; a linear weight must be BF16/F16/F32, U8 (NVFP4) or F8_E4M3 (FP8)");
    }

    // A declared format (header metadata or a .comfy_quant marker) must agree with what the tensors are.
    std::optional<WeightFormat> declared;
    std::string declared_by;
    if (auto it = declared_formats_.find(full); it != declared_formats_.end()) {
        declared = it->second;
        declared_by = declared_in_;
    }
    if (const TensorInfo* marker = optional(full + ".comfy_quant")) {
        check(marker->dtype == DType::U8 && marker->data, marker->file, ": ", marker->name,
              " must be a U8 tensor holding JSON");
        const std::string where = str(marker->file, ": ", marker->name);
        const nlohmann::json q = parse_json_strict(reinterpret_cast<const char*>(marker->data), marker->nbytes, where);
        check(q.is_object() && q.contains("format") && q["format"].is_string(), where, ": no \"format\"");
        const WeightFormat f = parse_declared_format(q["format"], where);
        check(!declared || *declared == f, where, " says ", weight_format_name(f), " but ", declared_by, " says ",
              weight_format_name(*declared));
        declared = f;
        declared_by = where;
    }
    if (declared)
        check(*declared == lw.format, declared_by, " declares ", full, " as ", weight_format_name(*declared),
              " but its tensors are ", lw.format_label());

    ++format_counts_[lw.format_label()];
    return lw;
}

Tensor DecoderCheckpoint::take_f32(const std::string& name, const Shape& expected) {
    const TensorInfo& t = claim(file_name(name));
    check(is_float_dtype(t.dtype), t.file, ": ", t.name, " has dtype ", dtype_name(t.dtype), ", expected a float");
    check(t.shape == expected, t.file, ": ", t.name, " has shape ", shape_str(t.shape), ", expected ",
          shape_str(expected));
    return load_f32(t);
}

const TensorInfo& DecoderCheckpoint::take_mapped(const std::string& name, const Shape& expected) {
    const TensorInfo& t = claim(file_name(name));
    check(t.dtype == DType::BF16 || t.dtype == DType::F16 || t.dtype == DType::F32, t.file, ": ", t.name, " has dtype ",
          dtype_name(t.dtype), ", expected BF16, F16 or F32");
    check(t.shape == expected, t.file, ": ", t.name, " has shape ", shape_str(t.shape), ", expected ",
          shape_str(expected));
    check(t.data != nullptr, t.file, ": ", t.name, " was opened header-only");
    return t;
}

void DecoderCheckpoint::allow_unused(int64_t layers_used, bool final_norm_used) {
    layers_used_ = layers_used;
    final_norm_used_ = final_norm_used;
}

void DecoderCheckpoint::finish() const {
    std::vector<std::string> unexpected;
    int64_t skipped = 0;
    const std::string layers = prefix_ + "layers.";
    for (const std::string& name : ckpt_.names()) {
        if (claimed_.count(name)) continue;
        bool unused = std::find(std::begin(kUnusedNames), std::end(kUnusedNames), name) != std::end(kUnusedNames);
        for (const char* p : kUnusedPrefixes) unused = unused || name.starts_with(p);
        if (!unused && name.starts_with(layers)) {
            // layers.N.<rest>: decoder layers past the last one FLUX.2 reads are never computed.
            const std::string rest = name.substr(layers.size());
            const size_t dot = rest.find('.');
            const std::string index = rest.substr(0, dot);
            const bool numeric = !index.empty() && std::all_of(index.begin(), index.end(), ::isdigit);
            unused = numeric && dot != std::string::npos && std::stoll(index) >= layers_used_;
        }
        if (!unused && name == prefix_ + "norm.weight") unused = !final_norm_used_;
        if (unused)
            ++skipped;
        else
            unexpected.push_back(name);
    }
    check(unexpected.empty(), ckpt_.describe(), ": ", unexpected.size(), " tensors do not belong to a ",
          decoder_family_name(config_.family), " text encoder under prefix \"", prefix_,
          "\": ", quoted_list(unexpected, 10));
    log_debug(ckpt_.describe(), ": ", skipped, " tensors not needed (lm_head, vision tower, layers >= ", layers_used_,
              final_norm_used_ ? "" : ", final norm", ")");
}

std::string DecoderCheckpoint::describe() const {
    std::string formats;
    for (const auto& [label, n] : format_counts_) formats += str(formats.empty() ? "" : ", ", label, " x", n);
    return str(ckpt_.describe(), " (prefix \"", prefix_, "\"; linear layers: ", formats.empty() ? "none" : formats,
               ")");
}

}  // namespace flux2
