#include "quant/quant_config.h"

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

#include "core/error.h"
#include "io/json.h"
#include "quant/nvfp4.h"

namespace flux2 {

namespace {

using nlohmann::json;

constexpr const char* kQuantMetadataKey = "_quantization_metadata";
constexpr const char* kComfyPrefix = "model.diffusion_model.";
constexpr const char* kComfyQuantSuffix = ".comfy_quant";

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string strip_comfy_prefix(const std::string& name) {
    const std::string prefix = kComfyPrefix;
    return name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name;
}

bool is_scalar(const TensorInfo& t) { return t.shape.size() <= 1 && shape_numel(t.shape) == 1; }

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

std::string describe_tensor(const TensorInfo& t) { return str(t.name, " ", dtype_name(t.dtype), shape_str(t.shape)); }

// What the tensors of one module say about its format (step 5, and the check applied to every declaration).
struct Inferred {
    WeightFormat format = WeightFormat::dense;
    std::string label;  // "bf16", "nvfp4", "fp8"
    std::string reason;
    std::string fp8_scale_name;
};

Inferred infer_from_tensors(const Checkpoint& ckpt, const std::string& module) {
    const TensorInfo& w = ckpt.get(module + ".weight");
    const TensorInfo* scale = ckpt.find(module + ".weight_scale");
    Inferred r;
    switch (w.dtype) {
        case DType::BF16:
        case DType::F16:
        case DType::F32:
            r.format = WeightFormat::dense;
            r.label = lower(dtype_name(w.dtype));
            r.reason = str(dtype_name(w.dtype), " weight");
            return r;
        case DType::U8:
            check(scale != nullptr && scale->dtype == DType::F8_E4M3 && scale->shape.size() == 2, ckpt.describe(), ": ",
                  describe_tensor(w), " is a packed U8 weight but ", module,
                  ".weight_scale is not a 2-D F8_E4M3 block-scale tensor (NVFP4 needs one), got ",
                  scale ? describe_tensor(*scale) : std::string("nothing"));
            r.format = WeightFormat::nvfp4;
            r.label = "nvfp4";
            r.reason = "U8 weight + 2-D F8_E4M3 weight_scale";
            return r;
        case DType::F8_E4M3: {
            const TensorInfo* old_scale = ckpt.find(module + ".scale_weight");
            check(!(scale && old_scale), ckpt.describe(), ": FP8 layer ", module,
                  " has both weight_scale and scale_weight; which one applies is ambiguous");
            const TensorInfo* s = scale ? scale : old_scale;
            check(s != nullptr && is_scalar(*s) &&
                      (s->dtype == DType::F32 || s->dtype == DType::F8_E4M3 || s->dtype == DType::BF16 ||
                       s->dtype == DType::F16),
                  ckpt.describe(), ": ", describe_tensor(w), " is an FP8 weight but ", module,
                  ".weight_scale (or .scale_weight) is not a scalar float scale, got ",
                  s ? describe_tensor(*s) : std::string("nothing"));
            r.format = WeightFormat::fp8;
            r.label = "fp8";
            r.fp8_scale_name = scale ? "weight_scale" : "scale_weight";
            r.reason = str("F8_E4M3 weight + scalar ", r.fp8_scale_name);
            return r;
        }
        default:
            fail(ckpt.describe(), ": linear weight ", describe_tensor(w),
                 " has a storage type this engine does not read (expected BF16/F16/F32, U8 NVFP4 or F8_E4M3)");
    }
}

// Maps a ComfyUI / BFL format string (metadata "format" or a .comfy_quant marker) to ours.
WeightFormat comfy_format(const std::string& format, const std::string& where) {
    if (format == "nvfp4") return WeightFormat::nvfp4;
    if (format == "float8_e4m3fn") return WeightFormat::fp8;
    fail(where, ": quantization format \"", format,
         "\" is not supported (supported: \"nvfp4\", \"float8_e4m3fn\"; BF16/F16/F32 layers carry no format)");
}

std::string layer_format_string(const json& entry, const std::string& where) {
    check(entry.is_object(), where, ": expected an object like {\"format\": \"nvfp4\"}, got ", entry.dump());
    auto f = entry.find("format");
    check(f != entry.end() && f->is_string(), where, ": missing string \"format\" in ", entry.dump());
    return f->get<std::string>();
}

// ---- checkpoint-wide NVFP4 declarations (hf_quant_config.json, config.json quantization_config) ----

void collect_group_sizes(const json& obj, std::vector<int>* out) {
    if (!obj.is_object()) return;
    if (auto g = obj.find("group_size"); g != obj.end() && !g->is_null()) {
        check(g->is_number_integer(), "group_size must be an integer, got ", g->dump());
        out->push_back(g->get<int>());
    }
}

struct Declaration {
    std::vector<std::string> excludes;
    std::optional<int> group_size;
    std::optional<bool> swap_nibbles;
    std::optional<ScaleLayout> scale_layout;
};

// `block` holds quant_algo / group_size / exclude list; `root` may hold config_groups and layout flags too.
Declaration parse_declaration(const json& root, const json& block, const char* exclude_key, const std::string& where) {
    Declaration d;
    auto algo = block.find("quant_algo");
    check(algo != block.end() && algo->is_string(), where, ": missing string \"quant_algo\"");
    check(algo->get<std::string>() == "NVFP4", where, ": quant_algo \"", algo->get<std::string>(),
          "\" is not supported (only \"NVFP4\" is)");

    std::vector<int> sizes;
    collect_group_sizes(root, &sizes);
    if (&block != &root) collect_group_sizes(block, &sizes);
    for (const json* holder : {&root, &block}) {
        auto groups = holder->find("config_groups");
        if (groups == holder->end() || !groups->is_object()) continue;
        for (const auto& [name, group] : groups->items()) {
            collect_group_sizes(group, &sizes);
            if (group.is_object()) {
                for (const char* part : {"weights", "input_activations"}) {
                    if (group.contains(part)) collect_group_sizes(group[part], &sizes);
                }
            }
        }
    }
    for (int g : sizes) {
        check(g == sizes.front(), where, ": conflicting group_size values ", sizes.front(), " and ", g);
    }
    if (!sizes.empty()) {
        check(sizes.front() == kNvfp4Block, where, ": NVFP4 group_size ", sizes.front(), " is not supported (only ",
              kNvfp4Block, ")");
        d.group_size = sizes.front();
    }

    if (auto ex = block.find(exclude_key); ex != block.end()) {
        check(ex->is_array(), where, ": \"", exclude_key, "\" must be a list of module name patterns, got ",
              ex->dump());
        for (const auto& p : *ex) {
            check(p.is_string(), where, ": \"", exclude_key, "\" entries must be strings, got ", p.dump());
            d.excludes.push_back(p.get<std::string>());
        }
    }
    for (const json* holder : {&block, &root}) {
        if (auto s = holder->find("swap_weight_nibbles"); s != holder->end() && !d.swap_nibbles) {
            check(s->is_boolean(), where, ": swap_weight_nibbles must be true or false, got ", s->dump());
            d.swap_nibbles = s->get<bool>();
        }
        if (auto l = holder->find("checkpoint_weight_scale_layout"); l != holder->end() && !d.scale_layout) {
            check(l->is_string() && (*l == "swizzled" || *l == "linear"), where,
                  ": checkpoint_weight_scale_layout must be \"swizzled\" or \"linear\", got ", l->dump());
            d.scale_layout = *l == "swizzled" ? ScaleLayout::swizzled : ScaleLayout::linear;
        }
    }
    return d;
}

// BFL's fused projections only exist in BFL-named files; sglang keys the hi-first / swizzled convention on them.
bool has_packed_qkv_names(const Checkpoint& ckpt) {
    static const std::regex packed(R"(^(double_blocks\.\d+\.(img|txt)_attn\.qkv|single_blocks\.\d+\.linear1)\.)");
    for (const std::string& name : ckpt.names()) {
        if (std::regex_search(strip_comfy_prefix(name), packed)) return true;
    }
    return false;
}

void check_nvfp4_tensors(const Checkpoint& ckpt, const std::string& module, const QuantConfig& cfg) {
    const TensorInfo& w = ckpt.get(module + ".weight");
    const TensorInfo& s = ckpt.get(module + ".weight_scale");
    check(w.shape.size() == 2, ckpt.describe(), ": ", describe_tensor(w), " must be 2-D [out, in/2]");
    const int64_t n = w.shape[0], k = w.shape[1] * 2;
    check(k % cfg.group_size == 0, ckpt.describe(), ": ", describe_tensor(w), " holds ", k,
          " inputs per row, not a multiple of the NVFP4 group size ", cfg.group_size);
    const Shape linear = {n, k / cfg.group_size};
    const Shape swizzled = {round_up(n, 128), round_up(k / cfg.group_size, 4)};
    const bool want_swizzled = cfg.scale_layout == ScaleLayout::swizzled;
    const Shape& expect = want_swizzled ? swizzled : linear;
    const Shape& other = want_swizzled ? linear : swizzled;
    check(s.shape == expect, ckpt.describe(), ": ", describe_tensor(s), " does not fit ", describe_tensor(w),
          " with group size ", cfg.group_size, " in the ", scale_layout_name(cfg.scale_layout),
          " scale layout (expected ", shape_str(expect), "; chosen because ", cfg.layout_reason, ")",
          s.shape == other ? str(", but it matches the ",
                                 scale_layout_name(want_swizzled ? ScaleLayout::linear : ScaleLayout::swizzled),
                                 " layout: the checkpoint convention was misdetected")
                           : std::string());
    const TensorInfo* s2 = ckpt.find(module + ".weight_scale_2");
    check(s2 != nullptr && s2->dtype == DType::F32 && is_scalar(*s2), ckpt.describe(), ": NVFP4 layer ", module,
          " needs a scalar F32 weight_scale_2, got ", s2 ? describe_tensor(*s2) : std::string("nothing"));
    if (const TensorInfo* in = ckpt.find(module + ".input_scale")) {
        check(in->dtype == DType::F32 && is_scalar(*in), ckpt.describe(), ": NVFP4 layer ", module,
              " has an input_scale that is not a scalar F32: ", describe_tensor(*in));
    }
}

Declaration parse_hf_quant_config(const json& root, const std::string& path) {
    check(root.is_object(), path, ": must be a JSON object");
    auto nested = root.find("quantization");
    if (nested == root.end()) return parse_declaration(root, root, "ignore", path);  // flat, as in config.json
    check(nested->is_object(), path, ": \"quantization\" must be an object");
    return parse_declaration(root, *nested, "exclude_modules", path);
}

// {"format_version": ..., "layers": {"<layer>": {"format": "nvfp4"}, ...}}
std::map<std::string, std::string> listed_in_metadata(const std::string& text, const std::string& where) {
    const json meta = parse_json_strict(text.data(), text.size(), where);
    check(meta.is_object() && meta.contains("layers") && meta["layers"].is_object(), where,
          ": _quantization_metadata must look like {\"format_version\": ..., \"layers\": {...}}");
    std::map<std::string, std::string> listed;
    for (const auto& [layer, entry] : meta["layers"].items()) {
        listed.emplace(strip_comfy_prefix(layer), layer_format_string(entry, str(where, ": layer \"", layer, "\"")));
    }
    return listed;
}

std::map<std::string, std::string> listed_by_markers(const Checkpoint& ckpt, const std::vector<std::string>& markers) {
    std::map<std::string, std::string> listed;
    for (const std::string& name : markers) {
        const TensorInfo& t = ckpt.get(name);
        const std::string where = str(ckpt.describe(), ": ", name);
        check(t.dtype == DType::U8 && t.shape.size() == 1, where, " must be a 1-D U8 tensor holding JSON, got ",
              describe_tensor(t));
        check(t.data != nullptr, where, ": markers can only be read with tensor data mapped (opened header-only)");
        const json entry = parse_json_strict(reinterpret_cast<const char*>(t.data), t.nbytes, where);
        const std::string module = name.substr(0, name.size() - std::string(kComfyQuantSuffix).size());
        listed.emplace(strip_comfy_prefix(module), layer_format_string(entry, where));
    }
    return listed;
}

}  // namespace

const char* quant_source_name(QuantSource source) {
    switch (source) {
        case QuantSource::hf_quant_config:
            return "hf_quant_config.json";
        case QuantSource::config_json:
            return "config.json quantization_config";
        case QuantSource::header_metadata:
            return "header _quantization_metadata";
        case QuantSource::comfy_quant:
            return ".comfy_quant markers";
        case QuantSource::inferred:
            return "tensors";
    }
    return "unknown";
}

const char* nibble_order_name(NibbleOrder order) { return order == NibbleOrder::hi_first ? "hi-first" : "lo-first"; }

const char* scale_layout_name(ScaleLayout layout) {
    return layout == ScaleLayout::swizzled ? "swizzled-128x4" : "linear";
}

bool wildcard_match(const std::string& pattern, const std::string& name) {
    // Greedy glob with backtracking to the last '*': linear in practice for module-name patterns.
    size_t p = 0, n = 0, star = std::string::npos, resume = 0;
    while (n < name.size()) {
        if (p < pattern.size() && pattern[p] == '*') {
            star = p++;
            resume = n;
        } else if (p < pattern.size() && pattern[p] == name[n]) {
            ++p;
            ++n;
        } else if (star != std::string::npos) {
            p = star + 1;
            n = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
}

const LayerQuant& QuantConfig::layer(const std::string& module) const {
    auto it = layers.find(module);
    check(it != layers.end(), "no quantization resolved for \"", module, "\": it is not a linear layer (2-D .weight)");
    return it->second;
}

bool QuantConfig::has_nvfp4() const {
    return std::any_of(layers.begin(), layers.end(),
                       [](const auto& kv) { return kv.second.format == WeightFormat::nvfp4; });
}

std::string QuantConfig::summary() const {
    std::map<std::string, int> counts;
    int dynamic = 0;
    for (const auto& [module, lq] : layers) {
        ++counts[lq.label];
        dynamic += lq.dynamic_input_scale;
    }
    std::string out;
    for (const auto& [label, n] : counts) out += str(out.empty() ? "" : " / ", n, " ", label);
    out += " checkpoint linears";
    out += str(" (declared by ", quant_source_name(declared_by));
    if (!declared_in.empty()) out += str(" in ", declared_in);
    if (has_nvfp4()) {
        out += str("; nvfp4 ", nibble_order_name(nibble_order), ", ", scale_layout_name(scale_layout), " scales");
        if (dynamic) out += str(", ", dynamic, " without input_scale (dynamic)");
    }
    return out + ")";
}

QuantConfig resolve_quant_config(const QuantInputs& in) {
    check(in.checkpoint != nullptr, "resolve_quant_config: no checkpoint");
    const Checkpoint& ckpt = *in.checkpoint;
    QuantConfig cfg;

    // Linear candidates: every 2-D ".weight". Norm gains are 1-D and biases have no ".weight" suffix.
    std::map<std::string, Inferred> inferred;
    for (const std::string& name : ckpt.names()) {
        if (!ends_with(name, ".weight") || ckpt.get(name).shape.size() != 2) continue;
        const std::string module = name.substr(0, name.size() - 7);
        inferred.emplace(module, infer_from_tensors(ckpt, module));
    }

    // The decisive source: the first one present in priority order.
    std::vector<std::string> markers;
    for (const std::string& name : ckpt.names()) {
        if (ends_with(name, kComfyQuantSuffix)) markers.push_back(name);
    }
    const auto metadata = ckpt.metadata().find(kQuantMetadataKey);
    const bool has_metadata = metadata != ckpt.metadata().end();
    const json* quant_block = nullptr;
    if (in.config && in.config->is_object()) {
        auto qc = in.config->find("quantization_config");
        if (qc != in.config->end() && !qc->is_null()) quant_block = &*qc;
    }
    std::optional<Declaration> decl;
    std::map<std::string, std::string> listed;  // metadata / marker formats by prefix-stripped module name
    if (in.hf_quant_config) {
        cfg.declared_by = QuantSource::hf_quant_config;
        cfg.declared_in = in.hf_quant_config_path;
        decl = parse_hf_quant_config(*in.hf_quant_config, in.hf_quant_config_path);
    } else if (quant_block) {
        cfg.declared_by = QuantSource::config_json;
        cfg.declared_in = in.config_path;
        const std::string where = in.config_path + ": quantization_config";
        check(quant_block->is_object(), where, " must be an object");
        decl = parse_declaration(*quant_block, *quant_block, "ignore", where);
    } else if (has_metadata) {
        cfg.declared_by = QuantSource::header_metadata;
        cfg.declared_in = ckpt.describe();
        listed = listed_in_metadata(metadata->second, cfg.declared_in);
    } else if (!markers.empty()) {
        cfg.declared_by = QuantSource::comfy_quant;
        cfg.declared_in = ckpt.describe();
        listed = listed_by_markers(ckpt, markers);
    }
    if (decl) {
        cfg.exclude_patterns = decl->excludes;
        if (decl->group_size) cfg.group_size = *decl->group_size;
    }

    // Every listed layer must be a linear of this checkpoint (a stale list means a mismatched file).
    std::set<std::string> stripped_modules;
    for (const auto& [module, inf] : inferred) stripped_modules.insert(strip_comfy_prefix(module));
    for (const auto& [layer, format] : listed) {
        check(stripped_modules.count(layer) != 0, cfg.declared_in, " lists layer \"", layer,
              "\", which has no 2-D .weight in ", ckpt.describe());
    }

    // Decide each layer, then hold the decision against the tensors.
    for (const auto& [module, inf] : inferred) {
        LayerQuant lq;
        lq.source = cfg.declared_by;
        const std::string bare = strip_comfy_prefix(module);
        if (decl) {
            const std::string alias = in.alias ? in.alias(module) : std::string();
            const std::string* hit = nullptr;
            for (const std::string& p : decl->excludes) {
                if (wildcard_match(p, module) || wildcard_match(p, bare) ||
                    (!alias.empty() && wildcard_match(p, alias))) {
                    hit = &p;
                    break;
                }
            }
            lq.format = hit ? WeightFormat::dense : WeightFormat::nvfp4;
            lq.reason = hit ? str("excluded by pattern \"", *hit, "\"") : std::string("quant_algo NVFP4, not excluded");
        } else if (cfg.declared_by == QuantSource::header_metadata || cfg.declared_by == QuantSource::comfy_quant) {
            const bool by_markers = cfg.declared_by == QuantSource::comfy_quant;
            auto it = listed.find(bare);
            if (it == listed.end()) {
                lq.format = WeightFormat::dense;
                lq.reason = by_markers ? "no marker" : "not listed";
            } else {
                lq.format = comfy_format(it->second, str(cfg.declared_in, ": layer \"", bare, "\""));
                lq.reason = str(by_markers ? "marked " : "listed as ", it->second);
            }
        } else {
            lq.format = inf.format;
            lq.reason = inf.reason;
        }
        check(lq.format == inf.format, cfg.declared_in, " makes layer ", module, " ", weight_format_name(lq.format),
              " (", lq.reason, "), but its tensors are ", inf.label, " (", inf.reason, ") in ", ckpt.describe());
        lq.label = inf.label;
        lq.fp8_scale_name = inf.fp8_scale_name;
        lq.dynamic_input_scale = lq.format == WeightFormat::nvfp4 && ckpt.find(module + ".input_scale") == nullptr;
        cfg.layers.emplace(module, std::move(lq));
    }

    // NVFP4 byte conventions: sglang's rule (BFL packed names, ComfyUI markers or ComfyUI header metadata mean the
    // BFL/ComfyUI convention, anything else the ModelOpt one), unless the JSON config sets them explicitly.
    const bool comfy_like = has_packed_qkv_names(ckpt) || !markers.empty() || has_metadata;
    cfg.nibble_order = comfy_like ? NibbleOrder::hi_first : NibbleOrder::lo_first;
    cfg.scale_layout = comfy_like ? ScaleLayout::swizzled : ScaleLayout::linear;
    cfg.layout_reason = comfy_like ? "BFL/ComfyUI checkpoint (packed-QKV names, .comfy_quant markers or "
                                     "_quantization_metadata)"
                                   : "ModelOpt-style checkpoint (no BFL packed-QKV names, no ComfyUI markers)";
    if (decl && decl->swap_nibbles) {
        cfg.nibble_order = *decl->swap_nibbles ? NibbleOrder::hi_first : NibbleOrder::lo_first;
        cfg.layout_reason += str("; nibble order set by swap_weight_nibbles in ", cfg.declared_in);
    }
    if (decl && decl->scale_layout) {
        cfg.scale_layout = *decl->scale_layout;
        cfg.layout_reason += str("; scale layout set by checkpoint_weight_scale_layout in ", cfg.declared_in);
    }
    for (const auto& [module, lq] : cfg.layers) {
        if (lq.format == WeightFormat::nvfp4) check_nvfp4_tensors(ckpt, module, cfg);
    }
    return cfg;
}

}  // namespace flux2
