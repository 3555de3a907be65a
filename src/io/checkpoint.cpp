#include "io/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/json.h"

namespace flux2 {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kQuantMetadataKey = "_quantization_metadata";
constexpr const char* kIndexSuffix = ".safetensors.index.json";

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

json parse_quant_metadata(const std::string& text, const std::string& file) {
    const std::string origin = str(file, ": __metadata__ \"", kQuantMetadataKey, "\"");
    json value = parse_json_strict(text.data(), text.size(), origin);
    check(value.is_object(), origin, " must be a JSON object");
    auto layers = value.find("layers");
    check(layers == value.end() || layers->is_object(), origin, ": \"layers\" must be an object");
    return value;
}

// Shards of one model each carry the quantization of their own layers: the "layers" maps are united (a layer
// described differently by two files is an error), other keys are taken from the later file.
std::string merge_quant_metadata(const std::string& merged_text, const std::string& merged_from,
                                 const std::string& text, const std::string& file) {
    json merged = parse_quant_metadata(merged_text, merged_from);
    const json incoming = parse_quant_metadata(text, file);
    json layers = merged.contains("layers") ? merged["layers"] : json::object();
    if (incoming.contains("layers")) {
        for (const auto& [layer, format] : incoming["layers"].items()) {
            auto it = layers.find(layer);
            if (it != layers.end() && *it != format) {
                fail(kQuantMetadataKey, ": layer \"", layer, "\" is described as ", it->dump(), " in ", merged_from,
                     " but as ", format.dump(), " in ", file);
            }
            layers[layer] = format;
        }
    }
    for (const auto& [key, value] : incoming.items()) merged[key] = value;
    merged["layers"] = layers;
    return merged.dump();
}

}  // namespace

Checkpoint Checkpoint::open_files(const std::vector<std::string>& files, bool header_only) {
    check(!files.empty(), "no safetensors files to open");
    Checkpoint ckpt;
    ckpt.origin_ = files.size() == 1 ? files[0] : str(files.size(), " safetensors files");
    std::string quant_metadata_from;  // the files whose _quantization_metadata is merged so far, for messages
    for (const std::string& path : files) {
        auto file = SafetensorsFile::open(path, header_only);
        for (const TensorInfo& t : file->tensors()) {
            auto [it, inserted] = ckpt.by_name_.emplace(t.name, &t);
            check(inserted, "tensor \"", t.name, "\" is in both ", it->second->file, " and ", path);
        }
        for (const auto& [key, value] : file->metadata()) {
            auto it = ckpt.metadata_.find(key);
            if (key == kQuantMetadataKey && it != ckpt.metadata_.end()) {
                it->second = merge_quant_metadata(it->second, quant_metadata_from, value, path);
                quant_metadata_from += " and " + path;
            } else {
                ckpt.metadata_[key] = value;
                if (key == kQuantMetadataKey) quant_metadata_from = path;
            }
        }
        ckpt.files_.push_back(std::move(file));
    }
    return ckpt;
}

namespace {

// Opens a sharded checkpoint through its index and checks that the index and the shards agree exactly.
Checkpoint open_index(const std::string& index_path, bool header_only) {
    const json index = read_json_file(index_path);
    check(index.is_object(), index_path, ": index must be a JSON object");
    auto weight_map = index.find("weight_map");
    check(weight_map != index.end() && weight_map->is_object(), index_path,
          ": missing \"weight_map\" object (tensor name -> shard file)");
    check(!weight_map->empty(), index_path, ": \"weight_map\" lists no tensors");

    const fs::path dir = fs::path(index_path).parent_path();
    std::map<std::string, std::string> shard_of;  // tensor name -> shard path
    std::set<std::string> shards;
    std::error_code ec;
    for (const auto& [name, file] : weight_map->items()) {
        if (!file.is_string())
            fail(index_path, ": weight_map entry for \"", name, "\" must be a file name, got ", file.dump());
        const std::string shard = (dir / file.get<std::string>()).lexically_normal().string();
        check(fs::is_regular_file(shard, ec), index_path, ": tensor \"", name, "\" is mapped to ", shard,
              ", which does not exist");
        shard_of.emplace(name, shard);
        shards.insert(shard);
    }
    Checkpoint ckpt = Checkpoint::open_files(std::vector<std::string>(shards.begin(), shards.end()), header_only);
    for (const auto& [name, shard] : shard_of) {
        const TensorInfo* t = ckpt.find(name);
        check(t != nullptr, index_path, ": tensor \"", name, "\" is listed for ", shard, " but that file lacks it");
        check(t->file == shard, index_path, ": tensor \"", name, "\" is listed for ", shard, " but is in ", t->file);
    }
    for (const std::string& name : ckpt.names()) {
        check(shard_of.count(name) != 0, index_path, ": ", ckpt.get(name).file, " holds tensor \"", name,
              "\", which the index does not list");
    }
    return ckpt;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path, bool header_only) {
    std::error_code ec;
    const fs::file_status status = fs::status(path, ec);
    check(fs::exists(status), path, ": no such file or folder");
    if (fs::is_directory(status)) {
        std::vector<std::string> indexes, files;
        try {
            // is_regular_file() follows symlinks: the Hugging Face cache links snapshot files to blobs.
            for (const auto& entry : fs::directory_iterator(path)) {
                const std::string name = entry.path().filename().string();
                if (!entry.is_regular_file()) continue;
                if (ends_with(name, kIndexSuffix))
                    indexes.push_back(entry.path().string());
                else if (ends_with(name, ".safetensors"))
                    files.push_back(entry.path().string());
            }
        } catch (const fs::filesystem_error& e) {
            fail(path, ": cannot list the folder: ", e.code().message());
        }
        if (indexes.size() == 1) {
            Checkpoint ckpt = open_index(indexes[0], header_only);
            ckpt.origin_ = str("folder ", path, " via ", fs::path(indexes[0]).filename().string());
            return ckpt;
        }
        check(!files.empty(), path, ": folder holds no *.safetensors file and no *", kIndexSuffix);
        std::sort(files.begin(), files.end());
        Checkpoint ckpt = open_files(files, header_only);
        ckpt.origin_ = str("folder ", path);
        return ckpt;
    }
    if (ends_with(path, ".json")) {
        Checkpoint ckpt = open_index(path, header_only);
        ckpt.origin_ = path;
        return ckpt;
    }
    return open_files({path}, header_only);
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
    const TensorInfo* t = find(name);
    check(t != nullptr, "tensor \"", name, "\" not found in ", describe());
    return *t;
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> out;
    out.reserve(by_name_.size());
    for (const auto& [name, info] : by_name_) out.push_back(name);
    return out;
}

std::string Checkpoint::describe() const {
    const std::string tensors = str(by_name_.size(), by_name_.size() == 1 ? " tensor" : " tensors");
    if (files_.size() == 1 && origin_ == files_[0]->path()) return str(origin_, " (", tensors, ")");
    return str(origin_, " (", files_.size(), files_.size() == 1 ? " file, " : " files, ", tensors, ")");
}

}  // namespace flux2
