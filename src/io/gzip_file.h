#pragma once
// Whole-file reads that see through gzip, so data files can ship compressed (tokenizer.json.gz).
#include <cstddef>
#include <string>

namespace flux2 {

// Returns the bytes of `path`, gunzipped when the file starts with the gzip magic (1f 8b). Throws flux2::Error
// naming the file when it is not a regular file (a folder, a device), cannot be opened, read or decompressed, or
// when it or its decompressed bytes exceed `max_bytes` (checked before the bytes are read or inflated).
std::string read_file_maybe_gzip(const std::string& path, size_t max_bytes = size_t{1} << 30);

}  // namespace flux2
