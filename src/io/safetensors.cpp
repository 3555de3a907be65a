#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "io/json.h"

namespace flux2 {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; so is every host we run");

namespace {

using nlohmann::json;

// The reference implementation's limit: a larger header means a corrupt file or one that is not safetensors.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

uint64_t read_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

void check_min_file_size(uint64_t file_size, const std::string& origin) {
    check(file_size >= 8, origin, ": file is ", file_size,
          " bytes, too short for a safetensors file (it starts with an 8-byte header length)");
}

// Checks the 8-byte length prefix against the file size and returns the header length.
uint64_t checked_header_length(const uint8_t* prefix, uint64_t file_size, const std::string& origin) {
    check_min_file_size(file_size, origin);
    const uint64_t n = read_le64(prefix);
    check(n <= kMaxHeaderBytes, origin, ": header length ", n,
          " bytes is over the 100 MB limit (corrupt, or not a safetensors file)");
    check(n <= file_size - 8, origin, ": header length ", n, " bytes runs past the end of the file (", file_size,
          " bytes in all)");
    return n;
}

// A JSON value for an error message, cut short: it comes from an untrusted file and may be huge.
std::string brief(const json& value) {
    std::string text = value.dump();
    constexpr size_t kMax = 80;
    if (text.size() > kMax) text = text.substr(0, kMax) + "...";
    return text;
}

bool as_u64(const json& value, uint64_t* out) {
    if (value.is_number_unsigned()) {
        *out = value.get<uint64_t>();
        return true;
    }
    if (value.is_number_integer() && value.get<int64_t>() >= 0) {
        *out = static_cast<uint64_t>(value.get<int64_t>());
        return true;
    }
    return false;
}

const json& field(const json& entry, const char* key, const std::string& at) {
    auto it = entry.find(key);
    check(it != entry.end(), at, "missing \"", key, "\"");
    return *it;
}

TensorInfo parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_size,
                              const std::string& origin) {
    const std::string at = str(origin, ": tensor \"", name, "\": ");
    if (!entry.is_object()) fail(at, "entry must be a JSON object, got ", brief(entry));

    TensorInfo t;
    t.name = name;
    t.file = origin;

    const json& dtype = field(entry, "dtype", at);
    if (!dtype.is_string()) fail(at, "\"dtype\" must be a string, got ", brief(dtype));
    if (!parse_dtype(dtype.get<std::string>(), &t.dtype))
        fail(at, "unknown dtype ", brief(dtype),
             " (known: BF16, F16, F32, F64, I8, I16, I32, I64, U8, BOOL, F8_E4M3, F8_E5M2)");

    const json& shape = field(entry, "shape", at);
    if (!shape.is_array()) fail(at, "\"shape\" must be an array, got ", brief(shape));
    // The product of the non-zero dimensions, times the element size, must fit int64: then shape_numel() and byte
    // counts computed elsewhere cannot overflow, even for an empty tensor whose other dimensions are huge.
    constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    const uint64_t elem = dtype_size(t.dtype);
    uint64_t nonzero_product = 1;
    bool has_zero = false;
    for (const json& d : shape) {
        uint64_t dim = 0;
        if (!as_u64(d, &dim)) fail(at, "shape ", brief(shape), " has a dimension that is not a non-negative integer");
        if (dim != 0 && nonzero_product > kMax / elem / dim)
            fail(at, "shape ", brief(shape), " x ", dtype_name(t.dtype), " overflows 64-bit byte counts");
        t.shape.push_back(static_cast<int64_t>(dim));
        if (dim == 0)
            has_zero = true;
        else
            nonzero_product *= dim;
    }
    const uint64_t numel = has_zero ? 0 : nonzero_product;

    const json& offsets = field(entry, "data_offsets", at);
    uint64_t begin = 0, end = 0;
    if (!(offsets.is_array() && offsets.size() == 2 && as_u64(offsets[0], &begin) && as_u64(offsets[1], &end)))
        fail(at, "\"data_offsets\" must be two non-negative integers [begin, end], got ", brief(offsets));
    check(begin <= end, at, "data_offsets [", begin, ", ", end, "] end before they begin");
    check(end <= data_size, at, "data_offsets [", begin, ", ", end, "] run past the data section (", data_size,
          " bytes)");
    if (end - begin != numel * elem)
        fail(at, "data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes but shape ", shape_str(t.shape),
             " of ", dtype_name(t.dtype), " needs ", numel * elem);
    t.offset = begin;
    t.nbytes = end - begin;
    return t;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& origin) {
    if (!value.is_object()) fail(origin, ": \"__metadata__\" must be an object of strings, got ", brief(value));
    std::map<std::string, std::string> out;
    for (const auto& [key, v] : value.items()) {
        check(v.is_string(), origin, ": __metadata__ key \"", key, "\" has a ", v.type_name(),
              " value; safetensors metadata values must be strings");
        out.emplace(key, v.get<std::string>());
    }
    return out;
}

// Gaps between tensors and bytes after the last one are allowed; two tensors sharing bytes are not.
void check_no_overlap(const std::vector<TensorInfo>& sorted, const std::string& origin) {
    const TensorInfo* previous = nullptr;
    for (const TensorInfo& t : sorted) {
        if (t.nbytes == 0) continue;
        if (previous) {
            check(t.offset >= previous->offset + previous->nbytes, origin, ": tensors \"", previous->name,
                  "\" (data_offsets [", previous->offset, ", ", previous->offset + previous->nbytes, "]) and \"",
                  t.name, "\" (data_offsets [", t.offset, ", ", t.offset + t.nbytes, "]) overlap");
        }
        previous = &t;
    }
}

void read_exact(int fd, void* dst, size_t n, uint64_t at, const std::string& path) {
    auto* p = static_cast<uint8_t*>(dst);
    while (n > 0) {
        ssize_t got = ::pread(fd, p, n, static_cast<off_t>(at));
        if (got < 0 && errno == EINTR) continue;
        check(got >= 0, path, ": read error at byte ", at, ": ", std::strerror(errno));
        check(got > 0, path, ": unexpected end of file at byte ", at);
        p += got;
        n -= static_cast<size_t>(got);
        at += static_cast<uint64_t>(got);
    }
}

struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
};

float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

float f16_to_f32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        // Zero or subnormal: mant x 2^-24 is exact in float.
        const float v = std::ldexp(static_cast<float>(mant), -24);
        return sign ? -v : v;
    }
    // 112 = 127 - 15 rebiases the exponent; all-ones stays all-ones for inf and NaN (payload kept).
    const uint32_t exp32 = exp == 0x1fu ? 0xffu : exp + 112;
    return std::bit_cast<float>(sign | (exp32 << 23) | (mant << 13));
}

uint16_t f32_to_bf16(float f) {
    const uint32_t u = std::bit_cast<uint32_t>(f);
    // Rounding could carry a NaN's mantissa into infinity; keep NaNs NaN (quiet).
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
    const uint32_t round_nearest_even = 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>((u + round_nearest_even) >> 16);
}

template <class T, class Convert>
void convert_elements(const uint8_t* src, size_t n, float* dst, Convert convert) {
    // memcpy per element: offsets in the data section need not be aligned.
    for (size_t i = 0; i < n; ++i) {
        T v;
        std::memcpy(&v, src + i * sizeof(T), sizeof(T));
        dst[i] = convert(v);
    }
}

template <class T>
void convert_by_value(const uint8_t* src, size_t n, float* dst) {
    convert_elements<T>(src, n, dst, [](T v) { return static_cast<float>(v); });
}

uint64_t checked_nbytes(const Shape& shape, DType dtype, const std::string& at) {
    uint64_t numel = 1;
    for (int64_t d : shape) {
        if (d < 0) fail(at, "negative dimension in shape ", shape_str(shape));
        const auto dim = static_cast<uint64_t>(d);
        if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / dim)
            fail(at, "shape ", shape_str(shape), " overflows");
        numel *= dim;
    }
    if (numel > std::numeric_limits<uint64_t>::max() / dtype_size(dtype))
        fail(at, "shape ", shape_str(shape), " overflows");
    return numel * dtype_size(dtype);
}

}  // namespace

SafetensorsHeader parse_safetensors_header(const char* json_text, size_t json_len, uint64_t data_size,
                                           const std::string& origin) {
    const json doc = parse_json_strict(json_text, json_len, origin + ": header");
    if (!doc.is_object()) fail(origin, ": header must be a JSON object, got ", brief(doc));
    SafetensorsHeader header;
    for (const auto& [key, value] : doc.items()) {
        if (key == "__metadata__")
            header.metadata = parse_metadata(value, origin);
        else
            header.tensors.push_back(parse_tensor_entry(key, value, data_size, origin));
    }
    std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
        if (a.offset != b.offset) return a.offset < b.offset;
        if (a.nbytes != b.nbytes) return a.nbytes < b.nbytes;
        return a.name < b.name;
    });
    check_no_overlap(header.tensors, origin);
    return header;
}

SafetensorsHeader parse_safetensors_image(const uint8_t* image, size_t size, const std::string& origin) {
    const uint64_t n = checked_header_length(image, size, origin);
    const uint64_t data_start = 8 + n;
    SafetensorsHeader header =
        parse_safetensors_header(reinterpret_cast<const char*>(image + 8), n, size - data_start, origin);
    for (TensorInfo& t : header.tensors) t.data = image + data_start + t.offset;
    return header;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path, bool header_only) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    check(fd >= 0, path, ": cannot open: ", std::strerror(errno));
    FdCloser closer{fd};
    struct stat st {};
    check(::fstat(fd, &st) == 0, path, ": cannot stat: ", std::strerror(errno));
    check(S_ISREG(st.st_mode), path, ": not a regular file");

    std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->path_ = path;
    file->file_size_ = static_cast<uint64_t>(st.st_size);
    const uint64_t size = file->file_size_;
    check_min_file_size(size, path);

    if (header_only) {
        uint8_t prefix[8];
        read_exact(fd, prefix, sizeof(prefix), 0, path);
        const uint64_t n = checked_header_length(prefix, size, path);
        std::string text(n, '\0');
        read_exact(fd, text.data(), n, 8, path);
        file->header_ = parse_safetensors_header(text.data(), n, size - 8 - n, path);
    } else {
        check(size <= std::numeric_limits<size_t>::max(), path, ": too large to map");
        void* mapping = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        check(mapping != MAP_FAILED, path, ": cannot mmap ", size, " bytes: ", std::strerror(errno));
        file->mapping_ = mapping;  // owned from here: the destructor unmaps even if parsing throws
        file->mapping_size_ = size;
        file->header_ = parse_safetensors_image(static_cast<const uint8_t*>(mapping), size, path);
    }
    for (size_t i = 0; i < file->header_.tensors.size(); ++i) file->index_.emplace(file->header_.tensors[i].name, i);
    return file;
}

SafetensorsFile::~SafetensorsFile() {
    if (mapping_) ::munmap(mapping_, mapping_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::vector<float> read_f32(const TensorInfo& info) {
    const std::string at = str(info.file, ": tensor \"", info.name, "\": ");
    check(info.data != nullptr, at, "no data to read: the file was opened header-only");
    if (checked_nbytes(info.shape, info.dtype, at) != info.nbytes)
        fail(at, "holds ", info.nbytes, " bytes, which does not match shape ", shape_str(info.shape), " of ",
             dtype_name(info.dtype));
    const auto n = static_cast<size_t>(info.nbytes / dtype_size(info.dtype));
    std::vector<float> out(n);
    const uint8_t* src = info.data;
    float* dst = out.data();
    switch (info.dtype) {
        case DType::BF16:
            convert_elements<uint16_t>(src, n, dst, bf16_to_f32);
            break;
        case DType::F16:
            convert_elements<uint16_t>(src, n, dst, f16_to_f32);
            break;
        case DType::F32:
            if (n) std::memcpy(dst, src, n * sizeof(float));
            break;
        case DType::F64:
            convert_by_value<double>(src, n, dst);
            break;
        case DType::I8:
            convert_by_value<int8_t>(src, n, dst);
            break;
        case DType::I16:
            convert_by_value<int16_t>(src, n, dst);
            break;
        case DType::I32:
            convert_by_value<int32_t>(src, n, dst);
            break;
        case DType::I64:
            convert_by_value<int64_t>(src, n, dst);
            break;
        case DType::U8:
            convert_by_value<uint8_t>(src, n, dst);
            break;
        case DType::BOOL:
            convert_elements<uint8_t>(src, n, dst, [](uint8_t v) { return v ? 1.0f : 0.0f; });
            break;
        case DType::F8_E4M3:
        case DType::F8_E5M2:
            fail(at, dtype_name(info.dtype),
                 " values need their scale tensor to become floats; dequantize through "
                 "quant/ instead of read_f32");
    }
    return out;
}

Tensor load_f32(const TensorInfo& info) { return Tensor::from_f32(info.shape, read_f32(info)); }

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

void SafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape, const void* bytes,
                            size_t nbytes) {
    const std::string at = str("safetensors writer: tensor \"", name, "\": ");
    check(!name.empty() && name != "__metadata__", at, "is not a usable tensor name");
    check(std::none_of(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.name == name; }), at,
          "added twice");
    const uint64_t expected = checked_nbytes(shape, dtype, at);
    if (expected != nbytes)
        fail(at, "shape ", shape_str(shape), " of ", dtype_name(dtype), " needs ", expected, " bytes, got ", nbytes);
    const auto* p = static_cast<const uint8_t*>(bytes);
    entries_.push_back(Entry{name, dtype, shape, std::vector<uint8_t>(p, p + nbytes)});
}

void SafetensorsWriter::add_f32(const std::string& name, const Shape& shape, const float* values) {
    const uint64_t nbytes = checked_nbytes(shape, DType::F32, str("safetensors writer: tensor \"", name, "\": "));
    add(name, DType::F32, shape, values, nbytes);
}

void SafetensorsWriter::add_f32(const std::string& name, const Tensor& tensor) {
    add_f32(name, tensor.shape(), tensor.f32());
}

void SafetensorsWriter::add_bf16(const std::string& name, const Shape& shape, const float* values) {
    const uint64_t nbytes = checked_nbytes(shape, DType::BF16, str("safetensors writer: tensor \"", name, "\": "));
    std::vector<uint16_t> rounded(nbytes / 2);
    for (size_t i = 0; i < rounded.size(); ++i) rounded[i] = f32_to_bf16(values[i]);
    add(name, DType::BF16, shape, rounded.data(), nbytes);
}

namespace {

void write_all(int fd, const void* src, size_t n, const std::string& path) {
    const auto* p = static_cast<const uint8_t*>(src);
    while (n > 0) {
        ssize_t put = ::write(fd, p, n);
        if (put < 0 && errno == EINTR) continue;
        check(put > 0, path, ": write error: ", std::strerror(errno));
        p += put;
        n -= static_cast<size_t>(put);
    }
}

}  // namespace

void SafetensorsWriter::write(const std::string& path) const {
    // Insertion order for the JSON too, with __metadata__ first, so that the header reads like the data layout.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata_.empty()) header["__metadata__"] = metadata_;
    uint64_t offset = 0;
    for (const Entry& e : entries_) {
        const uint64_t end = offset + e.bytes.size();
        header[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {offset, end}}};
        offset = end;
    }
    std::string text;
    try {
        text = header.dump();
    } catch (const nlohmann::json::exception& e) {
        fail(path, ": cannot encode the header (names and metadata must be UTF-8): ", e.what());
    }
    // Like the reference writer: pad with spaces so the data section starts 8-byte aligned.
    text.append((8 - text.size() % 8) % 8, ' ');
    uint8_t prefix[8];
    for (int i = 0; i < 8; ++i) prefix[i] = static_cast<uint8_t>(static_cast<uint64_t>(text.size()) >> (8 * i));

    const std::string tmp = str(path, ".tmp-", ::getpid());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    check(fd >= 0, tmp, ": cannot create: ", std::strerror(errno));
    try {
        write_all(fd, prefix, sizeof(prefix), tmp);
        write_all(fd, text.data(), text.size(), tmp);
        for (const Entry& e : entries_) write_all(fd, e.bytes.data(), e.bytes.size(), tmp);
        check(::fsync(fd) == 0, tmp, ": fsync failed: ", std::strerror(errno));
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    const bool closed = ::close(fd) == 0;
    const int close_errno = errno;
    if (!closed || ::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(closed ? errno : close_errno);
        ::unlink(tmp.c_str());
        fail(path, ": cannot ", closed ? "rename the temporary file into place: " : "close the temporary file: ", why);
    }
}

}  // namespace flux2
