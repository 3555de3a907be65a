#include "models/transformer_checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <regex>

#include "core/error.h"
#include "core/log.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "models/names.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"

namespace flux2 {

namespace fs = std::filesystem;

// A tensor of the internal name space: either a checkpoint tensor as it is (norm gains, and anything unknown, so
// that finish() can report it), or a linear layer read from a checkpoint module, possibly a row range of a fused
// layer and possibly with its row halves swapped.
struct TransformerCheckpoint::Source {
    bool linear = false;
    std::string tensor;  // plain: the checkpoint tensor
    std::string module;  // linear: the checkpoint module (its tensors are module + ".weight", ...)
    int64_t row_begin = 0;
    int64_t rows = 0;
    int64_t in_features = 0;
    int64_t stored_rows = 0;  // rows of the whole checkpoint module
    bool swap_halves = false;
    LayerQuant quant;
};

namespace {

constexpr const char* kMixedPattern = R"(.*-mixed(?:-\d+-of-\d+)?\.safetensors$)";

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Tensors that belong to a linear module besides its ".weight".
constexpr const char* kCompanions[] = {".weight_scale", ".weight_scale_2", ".input_scale", ".scale_weight",
                                       ".comfy_quant"};

// Top-level tensors every FLUX.2 transformer has, in internal and BFL spelling (for the wrong-model report).
constexpr std::pair<const char*, const char*> kRequired[] = {
    {"x_embedder.weight", "img_in.weight"},
    {"context_embedder.weight", "txt_in.weight"},
    {"time_guidance_embed.timestep_embedder.linear_1.weight", "time_in.in_layer.weight"},
    {"time_guidance_embed.timestep_embedder.linear_2.weight", "time_in.out_layer.weight"},
    {"double_stream_modulation_img.linear.weight", "double_stream_modulation_img.lin.weight"},
    {"double_stream_modulation_txt.linear.weight", "double_stream_modulation_txt.lin.weight"},
    {"single_stream_modulation.linear.weight", "single_stream_modulation.lin.weight"},
    {"norm_out.linear.weight", "final_layer.adaLN_modulation.1.weight"},
    {"proj_out.weight", "final_layer.linear.weight"},
};

std::string list_some(const std::vector<std::string>& names, size_t max = 20) {
    std::string out;
    for (size_t i = 0; i < names.size() && i < max; ++i) out += str("\n    ", names[i]);
    if (names.size() > max) out += str("\n    ... and ", names.size() - max, " more");
    return out;
}

struct Files {
    Checkpoint ckpt;
    std::string dir;  // where config.json / hf_quant_config.json are looked for ("" for a single file)
    std::string what;
};

Files open_files(const std::string& path) {
    check(fs::exists(path), path, ": no such file or folder");
    if (!fs::is_directory(path)) {
        if (ends_with(path, ".json")) return {Checkpoint::open(path), fs::path(path).parent_path().string(), "index"};
        return {Checkpoint::open(path), "", "file"};
    }
    std::vector<std::string> mixed, other;
    bool index = false;
    const std::regex mixed_re(kMixedPattern);
    for (const auto& entry : fs::directory_iterator(path)) {
        if (!entry.is_regular_file()) continue;
        const std::string name = entry.path().filename().string();
        if (ends_with(name, ".safetensors.index.json")) index = true;
        if (!ends_with(name, ".safetensors")) continue;
        (std::regex_match(name, mixed_re) ? mixed : other).push_back(entry.path().string());
    }
    // A diffusers model root keeps the transformer in its own sub-folder.
    if (mixed.empty() && other.empty() && !index && fs::is_directory(fs::path(path) / "transformer")) {
        log_info("transformer: using ", (fs::path(path) / "transformer").string());
        return open_files((fs::path(path) / "transformer").string());
    }
    if (!mixed.empty() && !other.empty()) {
        std::sort(mixed.begin(), mixed.end());
        std::sort(other.begin(), other.end());
        log_info("transformer: ", path, " holds mixed and full NVFP4 files; using the mixed one(s) (",
                 fs::path(mixed[0]).filename().string(), ") over ", fs::path(other[0]).filename().string(),
                 other.size() > 1 ? " and others" : "", "; name a file to choose");
        return {Checkpoint::open_files(mixed), path, "folder"};
    }
    return {Checkpoint::open(path), path, "folder"};
}

std::optional<nlohmann::json> read_optional_json(const std::string& dir, const char* name, std::string* path) {
    if (dir.empty()) return std::nullopt;
    *path = (fs::path(dir) / name).string();
    if (!fs::is_regular_file(*path)) return std::nullopt;
    return read_json_file(*path);
}

// The config.json beside a single weights file, when it is a FLUX.2 transformer's: without it the RoPE axes,
// theta and eps would silently be FLUX.2's defaults.
std::optional<nlohmann::json> config_beside_file(const std::string& file, std::string* path) {
    auto j = read_optional_json(fs::path(file).parent_path().string(), "config.json", path);
    if (!j) return std::nullopt;
    const std::string cls = j->is_object() && j->contains("_class_name") && (*j)["_class_name"].is_string()
                                ? (*j)["_class_name"].get<std::string>()
                                : "";
    if (cls != "Flux2Transformer2DModel") {
        log_info("transformer: ", *path, " is not a Flux2Transformer2DModel config (_class_name \"", cls,
                 "\"); not read");
        return std::nullopt;
    }
    log_info("transformer: reading ", *path, " beside ", file);
    return j;
}

float read_scalar(const TensorInfo& t) {
    check(shape_numel(t.shape) == 1, t.file, ": tensor ", t.name, " must hold one value, has shape ",
          shape_str(t.shape));
    if (t.dtype == DType::F8_E4M3) return e4m3_to_f32(t.data[0]);
    return read_f32(t)[0];
}

// Rows [begin, begin + count) of a row-major byte matrix of `row_bytes` per row.
std::vector<uint8_t> row_bytes(const TensorInfo& t, int64_t begin, int64_t count, int64_t row_bytes) {
    check(t.data != nullptr, t.file, ": tensor ", t.name, " has no data mapped");
    const uint8_t* p = t.data + begin * row_bytes;
    return std::vector<uint8_t>(p, p + count * row_bytes);
}

}  // namespace

void TransformerCheckpoint::add_source(const std::string& internal, std::shared_ptr<Source> source) {
    const std::string from = source->linear ? source->module : source->tensor;
    auto [it, inserted] = sources_.emplace(internal, std::move(source));
    check(inserted, ckpt_.describe(), ": two checkpoint tensors map to the internal name ", internal, " (",
          it->second->linear ? it->second->module : it->second->tensor, " and ", from, ")");
}

TransformerCheckpoint TransformerCheckpoint::open(const std::string& path) {
    Files files = open_files(path);
    TransformerCheckpoint tc;
    tc.ckpt_ = std::move(files.ckpt);
    const Checkpoint& ckpt = tc.ckpt_;
    std::string config_path, hf_path;
    tc.config_ = files.what == "file" ? config_beside_file(path, &config_path)
                                      : read_optional_json(files.dir, "config.json", &config_path);
    if (tc.config_) tc.config_path_ = config_path;
    auto hf_quant = read_optional_json(files.dir, "hf_quant_config.json", &hf_path);

    // Naming: BFL (original) or internal (diffusers / ModelOpt). A file that mixes both is not one we know.
    const std::vector<std::string> names = ckpt.names();
    std::vector<std::string> bfl, internal, unknown;
    for (const std::string& n : names) {
        if (bfl_to_internal(n))
            bfl.push_back(n);
        else if (is_internal_transformer_name(n))
            internal.push_back(n);
        else
            unknown.push_back(n);
    }
    const bool is_bfl = !bfl.empty() && internal.empty();
    if (!unknown.empty() || (bfl.empty() == internal.empty())) {
        std::vector<std::string> missing;
        for (const auto& [diffusers_name, bfl_name] : kRequired) {
            if (!ckpt.find(diffusers_name) && !ckpt.find(bfl_name) &&
                !ckpt.find(std::string("model.diffusion_model.") + bfl_name)) {
                missing.push_back(str(diffusers_name, " (BFL: ", bfl_name, ")"));
            }
        }
        std::string msg = str(ckpt.describe(), ": not a FLUX.2 transformer checkpoint in a layout this engine knows");
        if (!bfl.empty() && !internal.empty()) {
            msg +=
                str("; it mixes BFL names (", bfl.front(), ", ...) with diffusers names (", internal.front(), ", ...)");
        }
        if (!unknown.empty()) msg += str("\n  unknown tensors (", unknown.size(), "):", list_some(unknown));
        if (!missing.empty()) msg += str("\n  missing tensors (", missing.size(), "):", list_some(missing));
        fail(msg);
    }
    tc.bfl_names_ = is_bfl;
    if (!names.empty()) {
        const std::string stripped = strip_transformer_prefix(names.front());
        tc.key_prefix_ = names.front().substr(0, names.front().size() - stripped.size());
    }
    auto to_internal = [&](const std::string& name) {
        return is_bfl ? *bfl_to_internal(name) : strip_transformer_prefix(name);
    };

    QuantInputs qin;
    qin.checkpoint = &ckpt;
    qin.hf_quant_config = std::move(hf_quant);
    qin.hf_quant_config_path = hf_path;
    qin.config = tc.config_;
    qin.config_path = config_path;
    qin.alias = [&](const std::string& module) {
        const std::string w = to_internal(module + ".weight");
        return w.substr(0, w.size() - 7);
    };
    tc.quant_ = resolve_quant_config(qin);

    // Linears first: they claim their companion tensors.
    std::set<std::string> consumed;
    int ignored_fp8_input_scales = 0;
    for (const auto& [module, lq] : tc.quant_.layers) {
        const TensorInfo& w = ckpt.get(module + ".weight");
        consumed.insert(w.name);
        for (const char* suffix : kCompanions) {
            if (ckpt.find(module + suffix) == nullptr) continue;
            // A companion a dense layer does not use stays visible, so finish() reports it.
            if (lq.format == WeightFormat::dense && std::string(suffix) != ".comfy_quant") continue;
            ignored_fp8_input_scales += lq.format == WeightFormat::fp8 && std::string(suffix) == ".input_scale";
            consumed.insert(module + suffix);
        }
        auto src = std::make_shared<Source>();
        src->linear = true;
        src->module = module;
        src->quant = lq;
        src->stored_rows = w.shape[0];
        src->rows = w.shape[0];
        src->in_features = lq.format == WeightFormat::nvfp4 ? w.shape[1] * 2 : w.shape[1];
        const std::string weight = to_internal(module + ".weight");
        const std::string base = weight.substr(0, weight.size() - 7);

        // Fused projections of the BFL file: Q, K, V are three equal row blocks (FLUX2_SPEC.md §5).
        static const std::regex fused(R"(^(transformer_blocks\.\d+\.attn\.)(to_qkv|to_added_qkv)$)");
        std::smatch m;
        if (std::regex_match(base, m, fused)) {
            check(src->rows % 3 == 0, ckpt.describe(), ": fused projection ", module, " has ", src->rows,
                  " rows, not three equal Q/K/V blocks");
            const bool img = m[2] == "to_qkv";
            const char* parts[3][2] = {{"to_q", "add_q_proj"}, {"to_k", "add_k_proj"}, {"to_v", "add_v_proj"}};
            for (int i = 0; i < 3; ++i) {
                auto part = std::make_shared<Source>(*src);
                part->rows = src->rows / 3;
                part->row_begin = i * part->rows;
                tc.add_source(str(m[1].str(), parts[i][img ? 0 : 1], ".weight"), part);
            }
            continue;
        }
        // BFL's final layer emits (shift, scale); the diffusers AdaLayerNormContinuous reads (scale, shift).
        src->swap_halves = is_bfl && base == "norm_out.linear";
        tc.add_source(base + ".weight", src);
    }
    if (ignored_fp8_input_scales) {
        log_info("transformer: ", ignored_fp8_input_scales,
                 " FP8 input_scale tensors ignored (FP8 layers run on unquantized activations)");
    }
    for (const std::string& n : names) {
        if (consumed.count(n)) continue;
        auto src = std::make_shared<Source>();
        src->tensor = n;
        tc.add_source(to_internal(n), src);
    }

    const std::string naming = is_bfl ? "BFL names" : "diffusers names";
    tc.layout_ = str(files.what == "file" ? "single file" : files.what, ", ", naming);
    if (qin.hf_quant_config) tc.layout_ += ", ModelOpt hf_quant_config.json";
    log_info("transformer: ", ckpt.describe(), ": ", tc.layout_, "; ", tc.quant_.summary());
    return tc;
}

bool TransformerCheckpoint::has(const std::string& name) const { return sources_.count(name) != 0; }

std::string TransformerCheckpoint::checkpoint_name(const std::string& internal) const {
    return key_prefix_ + (bfl_names_ ? internal_to_bfl(internal) : internal);
}

Shape TransformerCheckpoint::shape_of(const std::string& name) const {
    auto it = sources_.find(name);
    check(it != sources_.end(), ckpt_.describe(), ": no tensor ", checkpoint_name(name));
    const Source& s = *it->second;
    if (s.linear) return {s.rows, s.in_features};
    return ckpt_.get(s.tensor).shape;
}

LinearWeight TransformerCheckpoint::take_linear(const std::string& module, int64_t out_features, int64_t in_features) {
    const std::string name = module + ".weight";
    auto it = sources_.find(name);
    if (it == sources_.end()) {
        missing_.insert(str(checkpoint_name(name), " [", out_features, ", ", in_features, "]"));
        fail(ckpt_.describe(), ": missing linear ", checkpoint_name(name), " (expected [", out_features, ", ",
             in_features, "])");
    }
    const Source& s = *it->second;
    if (!s.linear) {
        fail(ckpt_.describe(), ": ", name, " (checkpoint tensor ", s.tensor, ", ", shape_str(ckpt_.get(s.tensor).shape),
             ") is not a linear weight");
    }
    const std::string where =
        s.rows == s.stored_rows ? s.module : str(s.module, " rows [", s.row_begin, ", ", s.row_begin + s.rows, ")");
    check(s.rows == out_features && s.in_features == in_features, ckpt_.describe(), ": linear ", module, " (", where,
          ", ", s.quant.label, ") has shape [", s.rows, ", ", s.in_features, "], expected [", out_features, ", ",
          in_features, "]");

    const TensorInfo& w = ckpt_.get(s.module + ".weight");
    LinearWeight lw;
    lw.name = module;
    lw.out_features = s.rows;
    lw.in_features = s.in_features;
    lw.format = s.quant.format;
    switch (s.quant.format) {
        case WeightFormat::dense:
            lw.dense.dtype = w.dtype;
            lw.dense.bytes =
                row_bytes(w, s.row_begin, s.rows, s.in_features * static_cast<int64_t>(dtype_size(w.dtype)));
            break;
        case WeightFormat::fp8:
            lw.fp8.codes = row_bytes(w, s.row_begin, s.rows, s.in_features);
            lw.fp8.scale = read_scalar(ckpt_.get(s.module + "." + s.quant.fp8_scale_name));
            break;
        case WeightFormat::nvfp4: {
            lw.nvfp4.codes = row_bytes(w, s.row_begin, s.rows, s.in_features / 2);
            if (quant_.nibble_order == NibbleOrder::lo_first) {
                swap_nibbles(lw.nvfp4.codes.data(), static_cast<int64_t>(lw.nvfp4.codes.size()));
            }
            const TensorInfo& sc = ckpt_.get(s.module + ".weight_scale");
            const int64_t cols = s.in_features / kNvfp4Block;
            if (quant_.scale_layout == ScaleLayout::linear) {
                lw.nvfp4.scales = row_bytes(sc, s.row_begin, s.rows, cols);
            } else {
                // Unswizzle just the rows this part needs; a split of a fused layer need not start on a 128-row
                // tile (tiny models), so go element by element through the layout formula.
                check(sc.data != nullptr, sc.file, ": tensor ", sc.name, " has no data mapped");
                lw.nvfp4.scales.resize(static_cast<size_t>(s.rows * cols));
                for (int64_t r = 0; r < s.rows; ++r) {
                    for (int64_t c = 0; c < cols; ++c) {
                        lw.nvfp4.scales[r * cols + c] = sc.data[swizzled_scale_offset(s.row_begin + r, c, cols)];
                    }
                }
            }
            lw.nvfp4.weight_scale_2 = read_scalar(ckpt_.get(s.module + ".weight_scale_2"));
            if (const TensorInfo* in = ckpt_.find(s.module + ".input_scale")) lw.nvfp4.input_scale = read_scalar(*in);
            break;
        }
    }
    if (s.swap_halves) lw = swap_row_halves(lw);
    claimed_.insert(name);
    return lw;
}

Tensor TransformerCheckpoint::take_f32(const std::string& name, const Shape& expected) {
    auto it = sources_.find(name);
    if (it == sources_.end()) {
        missing_.insert(str(checkpoint_name(name), " ", shape_str(expected)));
        fail(ckpt_.describe(), ": missing tensor ", checkpoint_name(name), " (expected ", shape_str(expected), ")");
    }
    const Source& s = *it->second;
    check(!s.linear, ckpt_.describe(), ": ", name, " is the weight of linear layer ", s.module,
          "; read it with take_linear");
    const TensorInfo& t = ckpt_.get(s.tensor);
    check(t.shape == expected, ckpt_.describe(), ": tensor ", t.name, " (internal ", name, ") has shape ",
          shape_str(t.shape), ", expected ", shape_str(expected));
    check(is_float_dtype(t.dtype), ckpt_.describe(), ": tensor ", t.name, " is ", dtype_name(t.dtype),
          ", expected a float tensor");
    claimed_.insert(name);
    return Tensor::from_f32(expected, read_f32(t));
}

void TransformerCheckpoint::finish() const {
    std::vector<std::string> unclaimed;
    for (const auto& [name, s] : sources_) {
        if (claimed_.count(name)) continue;
        std::string from = s->tensor;
        if (s->linear) {
            from = s->module + ".weight";
            if (s->rows != s->stored_rows) from += str(" rows [", s->row_begin, ", ", s->row_begin + s->rows, ")");
        }
        unclaimed.push_back(from == name ? name : str(name, " (checkpoint: ", from, ")"));
    }
    if (unclaimed.empty() && missing_.empty()) return;
    std::string msg = str(ckpt_.describe(), ": the checkpoint does not match the model");
    if (!unclaimed.empty()) msg += str("\n  unused checkpoint tensors (", unclaimed.size(), "):", list_some(unclaimed));
    if (!missing_.empty()) {
        msg += str("\n  missing tensors (", missing_.size(),
                   "):", list_some(std::vector<std::string>(missing_.begin(), missing_.end())));
    }
    fail(msg);
}

std::vector<TransformerCheckpoint::LinearInfo> TransformerCheckpoint::linears() const {
    std::vector<LinearInfo> out;
    for (const auto& [name, s] : sources_) {
        if (!s->linear) continue;
        LinearInfo info;
        info.module = name.substr(0, name.size() - 7);
        info.checkpoint_module = s->rows == s->stored_rows
                                     ? s->module
                                     : str(s->module, " rows ", s->row_begin, "..", s->row_begin + s->rows);
        if (s->swap_halves) info.checkpoint_module += " (halves swapped)";
        info.shape = {s->rows, s->in_features};
        info.quant = s->quant;
        out.push_back(std::move(info));
    }
    return out;
}

std::string TransformerCheckpoint::describe() const {
    std::map<std::string, int> counts;
    for (const auto& [name, s] : sources_) {
        if (s->linear) ++counts[s->quant.label];
    }
    std::string formats;
    for (const auto& [label, n] : counts) formats += str(formats.empty() ? "" : " / ", n, " ", label);
    return str(ckpt_.describe(), " [", layout_, "]: ", formats, " linears");
}

}  // namespace flux2
