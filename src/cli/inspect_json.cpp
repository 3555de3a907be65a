// `flux2 inspect --json`: the same facts as the text output, as one JSON document for scripts (docs/CLI.md lists
// the keys).
#include <map>
#include <optional>

#include "cli/commands.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "models/flux2/flux2_config.h"
#include "models/transformer_checkpoint.h"

namespace flux2::cli {

namespace {

using nlohmann::json;

// Tensors stored with a linear's weight (the same list the binder claims for it).
constexpr const char* kLinearParts[] = {".weight",      ".weight_scale", ".weight_scale_2",
                                        ".input_scale", ".scale_weight", ".comfy_quant"};

json architecture_json(const Flux2Config& c) {
    return {{"name", c.architecture_name()},
            {"inner_dim", c.inner_dim()},
            {"num_layers", c.num_layers},
            {"num_single_layers", c.num_single_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"attention_head_dim", c.attention_head_dim},
            {"mlp_hidden_dim", c.mlp_hidden()},
            {"in_channels", c.in_channels},
            {"out_channels", c.out_channels},
            {"joint_attention_dim", c.joint_attention_dim},
            {"timestep_guidance_channels", c.timestep_guidance_channels},
            {"guidance_embeds", c.guidance_embeds},
            {"axes_dims_rope", c.axes_dims_rope},
            {"rope_theta", c.rope_theta},
            {"eps", c.eps}};
}

json layer_json(const std::string& module, const LayerQuant& lq, const QuantConfig& q, const Checkpoint& ckpt,
                uint64_t* bytes) {
    const TensorInfo& w = ckpt.get(module + ".weight");
    const bool nvfp4 = lq.format == WeightFormat::nvfp4;
    *bytes = 0;
    for (const char* part : kLinearParts) {
        if (const TensorInfo* t = ckpt.find(module + part)) *bytes += t->nbytes;
    }
    json j = {{"name", module},
              {"shape", {w.shape[0], nvfp4 ? w.shape[1] * 2 : w.shape[1]}},
              {"format", lq.label},
              {"bytes", *bytes},
              {"source", quant_source_name(lq.source)},
              {"reason", lq.reason}};
    if (nvfp4) {
        j["nibble_order"] = nibble_order_name(q.nibble_order);
        j["scale_layout"] = scale_layout_name(q.scale_layout);
        j["input_scale"] = lq.dynamic_input_scale ? "dynamic" : "present";
    }
    if (lq.format == WeightFormat::fp8) j["scale_name"] = lq.fp8_scale_name;
    return j;
}

json transformer_json(const std::string& path, bool layers) {
    std::optional<TransformerCheckpoint> ckpt;
    try {
        ckpt.emplace(TransformerCheckpoint::open(path));
    } catch (const Error& e) {
        return {{"readable", false}, {"error", e.what()}};
    }
    const QuantConfig& q = ckpt->quant();
    json j = {{"readable", true},
              {"describe", ckpt->describe()},
              {"layout", ckpt->layout()},
              {"config_json", ckpt->config() ? json(ckpt->config_path()) : json(nullptr)}};
    try {
        j["architecture"] = architecture_json(Flux2Config::for_checkpoint(*ckpt));
    } catch (const Error& e) {
        j["architecture"] = {{"name", nullptr}, {"error", e.what()}};
    }
    j["quantization"] = {{"summary", q.summary()},
                         {"declared_by", quant_source_name(q.declared_by)},
                         {"declared_in", q.declared_in},
                         {"group_size", q.group_size}};
    if (q.has_nvfp4()) {
        j["quantization"]["nvfp4"] = {{"nibble_order", nibble_order_name(q.nibble_order)},
                                      {"scale_layout", scale_layout_name(q.scale_layout)},
                                      {"reason", q.layout_reason}};
    }
    std::map<std::string, uint64_t> per_format;
    uint64_t linear_bytes = 0, total = 0;
    json rows = json::array();
    for (const auto& [module, lq] : q.layers) {
        uint64_t bytes = 0;
        json row = layer_json(module, lq, q, ckpt->checkpoint(), &bytes);
        per_format[lq.label] += bytes;
        linear_bytes += bytes;
        if (layers) rows.push_back(std::move(row));
    }
    for (const auto& file : ckpt->checkpoint().files())
        for (const TensorInfo& t : file->tensors()) total += t.nbytes;
    j["bytes_per_format"] = per_format;
    // Norm gains and anything else that is not part of a linear layer.
    j["bytes_per_format"]["other"] = total - linear_bytes;
    if (layers) j["layers"] = std::move(rows);
    return j;
}

}  // namespace

std::string inspect_json(const std::string& path, bool tensors) {
    const Checkpoint ckpt = Checkpoint::open(path, /*header_only=*/true);
    json j = {{"path", path}, {"describe", ckpt.describe()}};
    j["files"] = json::array();
    for (const auto& file : ckpt.files()) {
        j["files"].push_back(
            {{"path", file->path()}, {"bytes", file->file_size()}, {"tensors", file->tensors().size()}});
    }
    j["metadata"] = ckpt.metadata();
    json dtypes = json::object();
    json list = json::array();
    for (const std::string& name : ckpt.names()) {
        const TensorInfo& t = ckpt.get(name);
        json& d = dtypes[dtype_name(t.dtype)];
        if (d.is_null()) d = {{"tensors", 0}, {"bytes", uint64_t{0}}};
        d["tensors"] = d["tensors"].get<uint64_t>() + 1;
        d["bytes"] = d["bytes"].get<uint64_t>() + t.nbytes;
        if (tensors) {
            list.push_back({{"name", name},
                            {"dtype", dtype_name(t.dtype)},
                            {"shape", t.shape},
                            {"bytes", t.nbytes},
                            {"file", t.file}});
        }
    }
    j["dtypes"] = std::move(dtypes);
    if (tensors) j["tensors"] = std::move(list);
    j["transformer"] = transformer_json(path, tensors);
    // Metadata is arbitrary text: bytes that are not UTF-8 become U+FFFD rather than failing the whole report.
    return j.dump(2, ' ', false, json::error_handler_t::replace);
}

}  // namespace flux2::cli
