// read_lora: groups a file's tensors into layers (A, B, optional alpha), checks them, and maps each layer's B rows
// onto the internal modules they belong to (lora_keys.h).
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/lora/lora_adapter.h"
#include "models/lora/lora_keys.h"

namespace flux2 {

namespace {

// The alpha settings of a PEFT LoraConfig saved by diffusers in __metadata__["lora_adapter_metadata"] (keys
// prefixed "transformer."; a plain adapter_config.json has them bare).
struct PeftAlpha {
    std::optional<float> lora_alpha;
    std::map<std::string, float> alpha_pattern;
    bool use_rslora = false;
};

PeftAlpha peft_alpha(const SafetensorsFile& f) {
    PeftAlpha p;
    auto it = f.metadata().find("lora_adapter_metadata");
    if (it == f.metadata().end()) return p;
    const nlohmann::json j =
        parse_json_strict(it->second.data(), it->second.size(), f.path() + " __metadata__[lora_adapter_metadata]");
    check(j.is_object(), f.path(), ": __metadata__[lora_adapter_metadata] is not a JSON object");
    auto get = [&](const std::string& key) -> const nlohmann::json* {
        for (const std::string& k : {"transformer." + key, key}) {
            if (auto v = j.find(k); v != j.end() && !v->is_null()) return &*v;
        }
        return nullptr;
    };
    if (const auto* v = get("use_dora")) {
        check(!(v->is_boolean() && v->get<bool>()), f.path(),
              ": the PEFT metadata says use_dora = true; DoRA adapters are not supported");
    }
    if (const auto* v = get("lora_alpha")) {
        check(v->is_number(), f.path(), ": PEFT metadata lora_alpha is not a number");
        p.lora_alpha = v->get<float>();
    }
    if (const auto* v = get("alpha_pattern")) {
        check(v->is_object(), f.path(), ": PEFT metadata alpha_pattern is not an object");
        for (const auto& [pattern, alpha] : v->items()) {
            check(alpha.is_number(), f.path(), ": PEFT metadata alpha_pattern['", pattern, "'] is not a number");
            p.alpha_pattern[pattern] = alpha.get<float>();
        }
    }
    if (const auto* v = get("use_rslora")) p.use_rslora = v->is_boolean() && v->get<bool>();
    return p;
}

// PEFT matches a pattern against the end of the module name at a "." boundary.
std::optional<float> pattern_alpha(const PeftAlpha& p, const std::string& module) {
    for (const auto& [pattern, alpha] : p.alpha_pattern) {
        if (module == pattern || (module.size() > pattern.size() &&
                                  module.compare(module.size() - pattern.size(), pattern.size(), pattern) == 0 &&
                                  module[module.size() - pattern.size() - 1] == '.')) {
            return alpha;
        }
    }
    return std::nullopt;
}

struct Pending {
    std::optional<LoraKey> key;
    const TensorInfo* a = nullptr;
    const TensorInfo* b = nullptr;
    const TensorInfo* alpha = nullptr;
};

std::vector<float> finite_values(const std::string& path, const TensorInfo& t) {
    check(is_float_dtype(t.dtype), path, ": tensor '", t.name, "' has dtype ", dtype_name(t.dtype),
          " (expected BF16, F16 or F32)");
    std::vector<float> v = read_f32(t);
    for (size_t i = 0; i < v.size(); ++i) {
        check(std::isfinite(v[i]), path, ": tensor '", t.name, "' holds ", v[i], " at element ", i,
              " (LoRA values must be finite)");
    }
    return v;
}

}  // namespace

const char* lora_format_name(LoraFormat format) {
    switch (format) {
        case LoraFormat::diffusers:
            return "diffusers";
        case LoraFormat::bfl:
            return "bfl";
        case LoraFormat::peft_bfl:
            return "peft-bfl";
        case LoraFormat::kohya:
            return "kohya";
        case LoraFormat::bfl_kohya:
            return "bfl-kohya";
    }
    return "?";
}

std::string LoraAdapter::format_label() const {
    std::string label;
    for (LoraFormat f : formats) {
        if (!label.empty()) label += '+';
        label += lora_format_name(f);
    }
    return label;
}

bool has_lora_keys(const std::vector<std::string>& tensor_names) {
    for (const std::string& n : tensor_names) {
        if (is_lora_pair_key(n)) return true;
    }
    return false;
}

LoraAdapter read_lora(const std::string& path) {
    auto file = SafetensorsFile::open(path);
    LoraAdapter adapter;
    adapter.path = path;
    std::map<std::string, Pending> layers;  // by layer stem, in name order
    for (const TensorInfo& t : file->tensors()) {
        std::optional<LoraKey> key = parse_lora_key(path, t.name);
        if (!key) {
            ++adapter.skipped_text_encoder_tensors;
            continue;
        }
        Pending& p = layers[key->layer];
        const TensorInfo** slot = key->role == LoraRole::a ? &p.a : key->role == LoraRole::b ? &p.b : &p.alpha;
        check(*slot == nullptr, path, ": tensors '", (*slot ? (*slot)->name : ""), "' and '", t.name,
              "' are the same part of layer '", key->layer, "'");
        *slot = &t;
        // A or B decides the layer's format: ".alpha" is spelt alike in the kohya and BFL-kohya files.
        if (key->role != LoraRole::alpha || !p.key) p.key = std::move(key);
    }
    if (adapter.skipped_text_encoder_tensors > 0) {
        log_warn(path, ": skipped ", adapter.skipped_text_encoder_tensors,
                 " text-encoder tensors (flux2 applies LoRAs to the transformer only)");
    }
    check(!layers.empty(), path,
          ": no transformer LoRA tensors (expected keys ending in .lora_A.weight/.lora_B.weight "
          "or .lora_down.weight/.lora_up.weight)");

    const PeftAlpha peft = peft_alpha(*file);
    std::map<std::string, std::string> module_owner;  // module -> the A key that already targets it
    for (auto& [stem, p] : layers) {
        const TensorInfo* named = p.a ? p.a : p.b ? p.b : p.alpha;
        check(p.a && p.b, path, ": layer '", stem, "' has ", p.a ? "A (" + p.a->name + ")" : "no A", " and ",
              p.b ? "B (" + p.b->name + ")" : "no B", "; a LoRA layer needs both (tensor '", named->name, "')");
        const LoraKey& key = *p.key;
        const Shape& as = p.a->shape;
        const Shape& bs = p.b->shape;
        check(as.size() == 2 && bs.size() == 2 && bs[1] == as[0] && as[0] > 0, path, ": layer '", stem, "': A '",
              p.a->name, "' ", shape_str(as), " and B '", p.b->name, "' ", shape_str(bs),
              " are not a LoRA pair (expected A [rank, in] and B [out, rank])");
        const int64_t rank = as[0], parts = static_cast<int64_t>(key.modules.size());
        check(bs[0] % parts == 0 && (!key.swap_halves || bs[0] % 2 == 0), path, ": tensor '", p.b->name, "' ",
              shape_str(bs), ": its ", bs[0], " rows do not split into ", key.swap_halves ? 2 : parts, " equal parts (",
              key.modules.front(), ", ...)");

        LoraLayer layer;
        layer.name = stem;
        layer.a_shape = as;
        layer.b_shape = bs;
        layer.alpha = static_cast<float>(rank);
        if (p.alpha) {
            check(p.alpha->shape.empty() || (p.alpha->shape.size() == 1 && p.alpha->shape[0] == 1), path, ": tensor '",
                  p.alpha->name, "' ", shape_str(p.alpha->shape), " is not a scalar alpha");
            layer.alpha = finite_values(path, *p.alpha)[0];
            layer.alpha_given = true;
        } else if (std::optional<float> pa = pattern_alpha(peft, key.modules.front())) {
            layer.alpha = *pa;
            layer.alpha_given = true;
        } else if (peft.lora_alpha) {
            layer.alpha = *peft.lora_alpha;
            layer.alpha_given = true;
        }
        layer.scale = layer.alpha / (peft.use_rslora ? std::sqrt(static_cast<float>(rank)) : static_cast<float>(rank));
        layer.modules = key.modules;

        auto a = std::make_shared<const std::vector<float>>(finite_values(path, *p.a));
        std::vector<float> b = finite_values(path, *p.b);
        if (key.swap_halves) {
            const size_t half = b.size() / 2;
            std::rotate(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(half), b.end());
        }
        const int64_t rows = bs[0] / parts;
        for (int64_t i = 0; i < parts; ++i) {
            const std::string& module = key.modules[static_cast<size_t>(i)];
            auto [owner, fresh] = module_owner.emplace(module, p.a->name);
            check(fresh, path, ": tensors '", owner->second, "' and '", p.a->name, "' both target ", module);
            LoraTerm term;
            term.module = module;
            term.key = p.a->name;
            term.rank = rank;
            term.in_features = as[1];
            term.out_features = rows;
            term.scale = layer.scale;
            term.a = a;
            const auto first = b.begin() + static_cast<std::ptrdiff_t>(i * rows * rank);
            term.b.assign(first, first + static_cast<std::ptrdiff_t>(rows * rank));
            adapter.terms.push_back(std::move(term));
        }
        if (std::find(adapter.formats.begin(), adapter.formats.end(), key.format) == adapter.formats.end()) {
            adapter.formats.push_back(key.format);
        }
        adapter.layers.push_back(std::move(layer));
    }
    return adapter;
}

}  // namespace flux2
