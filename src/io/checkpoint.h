#pragma once
// Several safetensors files seen as one tensor name space: a single file, a sharded checkpoint through its
// *.safetensors.index.json, or every *.safetensors of a folder.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace flux2 {

class Checkpoint {
public:
    // `path` is a .safetensors file, a *.safetensors.index.json, or a folder (its index.json if there is
    // exactly one, else all its *.safetensors files).
    static Checkpoint open(const std::string& path, bool header_only = false);
    static Checkpoint open_files(const std::vector<std::string>& files, bool header_only = false);

    const TensorInfo* find(const std::string& name) const;  // nullptr if absent
    const TensorInfo& get(const std::string& name) const;   // throws naming the checkpoint and the tensor
    std::vector<std::string> names() const;                 // sorted
    // __metadata__ of every file merged (later files win on conflicting keys, except _quantization_metadata,
    // whose "layers" maps are merged).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
    // "/p/x.safetensors (731 tensors)", "folder /p (3 files, 1234 tensors)", "/p/m.safetensors.index.json (...)"
    std::string describe() const;

private:
    std::vector<std::shared_ptr<SafetensorsFile>> files_;
    std::map<std::string, const TensorInfo*> by_name_;
    std::map<std::string, std::string> metadata_;
    std::string origin_;
};

}  // namespace flux2
