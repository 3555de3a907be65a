// libFuzzer target: a prompt as the server receives it, tokenized by FLUX.2's real tokenizers (the first byte picks
// Qwen3 for klein or Tekken for dev, from assets/). Encoding must give ids inside the vocabulary, and exactly 512 of
// them through encode_to_length, or throw flux2::Error (invalid UTF-8, named by offset); decoding those ids must not
// fail. Any other exception, crash, sanitizer report or timeout is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "models/tokenizer/tokenizer.h"

namespace {
const flux2::Tokenizer& tokenizer(bool mistral) {
    static const flux2::Tokenizer qwen3 = flux2::Tokenizer::load(FLUX2_SOURCE_DIR "/assets/qwen3-tokenizer");
    static const flux2::Tokenizer tekken = flux2::Tokenizer::load(FLUX2_SOURCE_DIR "/assets/mistral-tekken-tokenizer");
    return mistral ? tekken : qwen3;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const flux2::Tokenizer& tok = tokenizer(data[0] & 1);
    const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        const std::vector<int32_t> ids = tok.encode(text, data[0] & 2);
        for (int32_t id : ids)
            if (id < 0 || id >= tok.vocab_size()) std::abort();
        std::vector<int32_t> mask;
        const std::vector<int32_t> padded = tok.encode_to_length(text, data[0] & 2, 512, &mask);
        if (padded.size() != 512 || mask.size() != 512) std::abort();
        volatile size_t sink = tok.decode(ids).size();
        (void)sink;
    } catch (const flux2::Error&) {
        // Invalid UTF-8, refused with the offset: the expected outcome.
    }
    return 0;
}
