#pragma once
// Bounds a tokenizer's files and requests are checked against before anything is allocated for them: a hostile or
// broken file (a device such as /dev/zero, a gzip bomb, an id of 2^31 - 1) must fail with a message, not exhaust
// memory. The real FLUX.2 tokenizers are far inside them (Qwen3: 11 MB, 151k ids; Mistral: 19 MB, 131k ids).
#include <cstddef>
#include <cstdint>

namespace flux2 {

inline constexpr int64_t kMaxTokenId = (int64_t{1} << 31) - 2;        // ids are int32, and id + 1 must fit too
inline constexpr size_t kMaxTokenizerJsonBytes = size_t{512} << 20;   // tokenizer.json, after gunzip
inline constexpr size_t kMaxTokenizerConfigBytes = size_t{64} << 20;  // tokenizer_config.json (chat templates)
inline constexpr int kMaxEncodeLength = 1 << 20;                      // max_length of encode_to_length

}  // namespace flux2
