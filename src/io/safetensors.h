#pragma once
// Safetensors reading (mmap, header validated before any tensor byte is touched) and writing.
// Format: 8-byte little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}, __metadata__},
// then the data section; offsets are relative to the start of the data section.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace flux2 {

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    Shape shape;
    uint64_t offset = 0;            // start within the data section
    uint64_t nbytes = 0;
    const uint8_t* data = nullptr;  // into the mapping; nullptr when opened header-only
    std::string file;               // the file it lives in, for error messages
};

struct SafetensorsHeader {
    std::map<std::string, std::string> metadata;
    std::vector<TensorInfo> tensors;  // sorted by offset
};

// Validates a header (the JSON text) against a data section of `data_size` bytes. Throws Error naming `origin`
// and the offending tensor for: invalid JSON, unknown dtype, bad shape, offsets out of range / overlapping /
// not matching shape x dtype size, duplicate names, non-string metadata. Exposed for the fuzz target.
SafetensorsHeader parse_safetensors_header(const char* json, size_t json_len, uint64_t data_size,
                                           const std::string& origin);

// Validates a whole file image held in memory (length prefix, header, data section) and returns its header with
// TensorInfo::data pointing into `image`. The mmap reader and the fuzz target both go through here.
SafetensorsHeader parse_safetensors_image(const uint8_t* image, size_t size, const std::string& origin);

class SafetensorsFile {
public:
    // header_only: read just the header (no mapping of tensor bytes); TensorInfo::data stays nullptr.
    static std::shared_ptr<SafetensorsFile> open(const std::string& path, bool header_only = false);
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
    const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
    const TensorInfo* find(const std::string& name) const;  // nullptr if absent
    uint64_t file_size() const { return file_size_; }

private:
    SafetensorsFile() = default;
    std::string path_;
    SafetensorsHeader header_;
    std::map<std::string, size_t> index_;
    void* mapping_ = nullptr;
    size_t mapping_size_ = 0;
    uint64_t file_size_ = 0;
};

// Float view of a tensor: BF16, F16, F32, F64 converted exactly to float (F64 rounded); integer types converted
// by value. F8 types are refused (they need their scale: see quant/). Throws if opened header-only.
std::vector<float> read_f32(const TensorInfo& info);
Tensor load_f32(const TensorInfo& info);

class SafetensorsWriter {
public:
    void set_metadata(const std::string& key, const std::string& value);
    void add(const std::string& name, DType dtype, const Shape& shape, const void* bytes, size_t nbytes);
    void add_f32(const std::string& name, const Shape& shape, const float* values);
    void add_f32(const std::string& name, const Tensor& tensor);
    // Rounds to bf16 (round-to-nearest-even).
    void add_bf16(const std::string& name, const Shape& shape, const float* values);
    // Writes to a temporary file then renames, so a crash never leaves a half-written checkpoint.
    void write(const std::string& path) const;

private:
    struct Entry {
        std::string name;
        DType dtype;
        Shape shape;
        std::vector<uint8_t> bytes;
    };
    std::vector<Entry> entries_;
    std::map<std::string, std::string> metadata_;
};

}  // namespace flux2
