#pragma once
// Page-locked sources for --offload layers: the host bytes of streamed weights are pinned where they already are
// (no second host copy of the model), so that their copies to the device run asynchronously at full bus speed
// and can be recorded into a CUDA graph.
//
// CUDA registers whole pages and a page can be registered once, but a weight's bytes start and end inside pages
// another allocation may share. So only the whole pages inside each range are registered (cudaHostRegister), and
// the few bytes before and after them are copied once into one small page-locked buffer of this object's own.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace flux2::cuda {

class PinnedSources {
public:
    // One host-to-device copy: `bytes` from page-locked `src` to `dst_offset` of a device buffer.
    struct Copy {
        const void* src = nullptr;
        size_t dst_offset = 0;
        size_t bytes = 0;
    };

    // `purpose` names the flag in errors ("--offload layers"); `advice` ends them (what to do instead).
    PinnedSources(std::string purpose, std::string advice) : purpose_(std::move(purpose)), advice_(std::move(advice)) {}
    ~PinnedSources();
    PinnedSources(const PinnedSources&) = delete;
    PinnedSources& operator=(const PinnedSources&) = delete;

    // Asks for `bytes` at `data` to reach `dst_offset` of the device buffer of `group`.
    void add(size_t group, const uint8_t* data, size_t bytes, size_t dst_offset);
    // Pins everything added and returns the copies of each group (groups index the result). Throws, naming the
    // amount and CUDA's error, when the memory cannot be page-locked.
    std::vector<std::vector<Copy>> pin(size_t groups);

    size_t pinned_bytes() const { return pinned_bytes_; }

private:
    struct Range {
        size_t group = 0;
        const uint8_t* data = nullptr;
        size_t bytes = 0, dst_offset = 0;
    };
    std::string purpose_, advice_;
    std::vector<Range> ranges_;
    std::vector<void*> registered_;  // page-aligned starts passed to cudaHostRegister
    void* edges_ = nullptr;          // cudaHostAlloc'd copies of the partial pages
    size_t pinned_bytes_ = 0;
};

}  // namespace flux2::cuda
