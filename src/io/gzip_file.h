#pragma once
// Whole-file reads that see through gzip, so data files can ship compressed (tokenizer.json.gz).
#include <string>

namespace flux2 {

// Returns the bytes of `path`, gunzipped when the file starts with the gzip magic (1f 8b). Throws flux2::Error
// naming the file when it cannot be opened, read or decompressed.
std::string read_file_maybe_gzip(const std::string& path);

}  // namespace flux2
