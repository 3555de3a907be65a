#include "models/vae/vae_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <vector>

#include "core/error.h"
#include "core/log.h"
#include "io/safetensors.h"

namespace flux2 {

namespace {
const char* const kIgnored = "bn.num_batches_tracked";

bool looks_bfl(const std::vector<std::string>& names) {
    for (const auto& n : names)
        if (n.rfind("encoder.down.", 0) == 0 || n.rfind("decoder.up.", 0) == 0 || n.rfind("decoder.mid.block_", 0) == 0)
            return true;
    return false;
}

int count_bfl_up_blocks(const std::vector<std::string>& names) {
    static const std::regex up(R"(^decoder\.up\.(\d+)\.)");
    int count = 0;
    std::smatch m;
    for (const auto& n : names)
        if (std::regex_search(n, m, up)) count = std::max(count, std::stoi(m[1]) + 1);
    return count;
}
}  // namespace

std::string vae_name_from_bfl(const std::string& bfl_name, int num_up_blocks) {
    struct Rule {
        std::regex pattern;
        std::string replacement;
    };
    static const std::vector<Rule> rules = {
        {std::regex(R"(^encoder\.quant_conv\.)"), "quant_conv."},
        {std::regex(R"(^decoder\.post_quant_conv\.)"), "post_quant_conv."},
        {std::regex(R"(^(encoder|decoder)\.norm_out\.)"), "$1.conv_norm_out."},
        {std::regex(R"(^encoder\.down\.(\d+)\.block\.(\d+)\.)"), "encoder.down_blocks.$1.resnets.$2."},
        {std::regex(R"(^encoder\.down\.(\d+)\.downsample\.conv\.)"), "encoder.down_blocks.$1.downsamplers.0.conv."},
        {std::regex(R"(\.mid\.block_1\.)"), ".mid_block.resnets.0."},
        {std::regex(R"(\.mid\.block_2\.)"), ".mid_block.resnets.1."},
        {std::regex(R"(\.mid\.attn_1\.norm\.)"), ".mid_block.attentions.0.group_norm."},
        {std::regex(R"(\.mid\.attn_1\.(q|k|v)\.)"), ".mid_block.attentions.0.to_$1."},
        {std::regex(R"(\.mid\.attn_1\.proj_out\.)"), ".mid_block.attentions.0.to_out.0."},
        {std::regex(R"(\.nin_shortcut\.)"), ".conv_shortcut."},
    };
    std::string name = bfl_name;
    for (const Rule& r : rules) name = std::regex_replace(name, r.pattern, r.replacement);
    // Up blocks: BFL's up.k is diffusers' up_blocks.(n - 1 - k).
    static const std::regex up(R"(^decoder\.up\.(\d+)\.(block|upsample)\.)");
    std::smatch m;
    if (std::regex_search(name, m, up)) {
        const int k = std::stoi(m[1]);
        check(k < num_up_blocks, "VAE tensor ", bfl_name, ": up block ", k, " out of ", num_up_blocks);
        const std::string tail = m[2] == "block" ? "resnets." : "upsamplers.0.";
        name = str("decoder.up_blocks.", num_up_blocks - 1 - k, ".", tail, m.suffix().str());
    }
    return name;
}

VaeCheckpoint VaeCheckpoint::open(const std::string& path) {
    VaeCheckpoint v;
    v.ckpt_ = Checkpoint::open(path);
    const std::vector<std::string> names = v.ckpt_.names();
    v.bfl_ = looks_bfl(names);
    const int up_blocks = v.bfl_ ? count_bfl_up_blocks(names) : 0;
    for (const auto& n : names) {
        const std::string internal = v.bfl_ ? vae_name_from_bfl(n, up_blocks) : n;
        check(v.by_name_.emplace(internal, &v.ckpt_.get(n)).second, v.ckpt_.describe(), ": tensors map twice to ",
              internal);
    }
    if (!v.bfl_) {
        namespace fs = std::filesystem;
        const fs::path dir = fs::is_directory(path) ? fs::path(path) : fs::path(path).parent_path();
        const fs::path config = dir / "config.json";
        if (fs::exists(config)) {
            std::ifstream in(config);
            try {
                v.config_ = nlohmann::json::parse(in);
            } catch (const nlohmann::json::exception& e) {
                fail(config.string(), ": invalid JSON: ", e.what());
            }
        }
    }
    log_debug("VAE checkpoint ", v.describe());
    return v;
}

bool VaeCheckpoint::has(const std::string& name) const { return by_name_.count(name) > 0; }

const TensorInfo& VaeCheckpoint::get(const std::string& name) const {
    auto it = by_name_.find(name);
    check(it != by_name_.end(), describe(), ": missing VAE tensor ", name);
    return *it->second;
}

Shape VaeCheckpoint::shape_of(const std::string& name) const { return get(name).shape; }

Tensor VaeCheckpoint::take_f32(const std::string& name, const Shape& expected) {
    const TensorInfo& info = get(name);
    check(info.shape == expected, info.file, ": VAE tensor ", info.name, " has shape ", shape_str(info.shape),
          ", expected ", shape_str(expected));
    claimed_.insert(name);
    return load_f32(info);
}

LinearWeight VaeCheckpoint::take_linear(const std::string& module, int64_t out_features, int64_t in_features) {
    const std::string name = module + ".weight";
    const TensorInfo& info = get(name);
    const bool plain = info.shape == Shape{out_features, in_features};
    const bool conv1x1 = info.shape == Shape{out_features, in_features, 1, 1};
    check(plain || conv1x1, info.file, ": VAE tensor ", info.name, " has shape ", shape_str(info.shape), ", expected ",
          shape_str({out_features, in_features}));
    claimed_.insert(name);
    const std::vector<float> values = read_f32(info);
    LinearWeight w;
    w.name = module;
    w.out_features = out_features;
    w.in_features = in_features;
    w.format = WeightFormat::dense;
    w.dense.dtype = DType::F32;
    w.dense.bytes.resize(values.size() * sizeof(float));
    std::memcpy(w.dense.bytes.data(), values.data(), w.dense.bytes.size());
    return w;
}

void VaeCheckpoint::finish() const {
    std::string unclaimed;
    int count = 0;
    for (const auto& [name, info] : by_name_) {
        if (claimed_.count(name) || name == kIgnored) continue;
        if (count++ < 20) unclaimed += "\n  " + info->name;
    }
    check(count == 0, describe(), ": ", count,
          " tensors are not part of the VAE this configuration describes:", unclaimed, count > 20 ? "\n  ..." : "");
}

std::string VaeCheckpoint::describe() const {
    return str(ckpt_.describe(), bfl_ ? " (BFL autoencoder names)" : " (diffusers names)");
}

}  // namespace flux2
