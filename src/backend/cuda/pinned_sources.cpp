#include "backend/cuda/pinned_sources.h"

#include <cuda_runtime.h>
#include <unistd.h>

#include <cstring>

#include "backend/layer_stream_plan.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

namespace {
size_t page_size() {
    static const size_t size = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return size;
}
}  // namespace

PinnedSources::~PinnedSources() {
    for (void* p : registered_) cudaHostUnregister(p);
    if (edges_) cudaFreeHost(edges_);
}

void PinnedSources::add(size_t group, const uint8_t* data, size_t bytes, size_t dst_offset) {
    check(registered_.empty() && !edges_, "PinnedSources::add after pin");
    if (bytes > 0) ranges_.push_back({group, data, bytes, dst_offset});
}

std::vector<std::vector<PinnedSources::Copy>> PinnedSources::pin(size_t groups) {
    check(registered_.empty() && !edges_, "PinnedSources::pin called twice");
    size_t edge_bytes = 0;
    for (const Range& r : ranges_) {
        const PageSplit split = split_at_pages(reinterpret_cast<uintptr_t>(r.data), r.bytes, page_size());
        edge_bytes += split.head + split.tail;
    }
    if (edge_bytes > 0) {
        const cudaError_t e = cudaHostAlloc(&edges_, edge_bytes, cudaHostAllocDefault);
        check(e == cudaSuccess, purpose_, ": cannot allocate ", edge_bytes, " bytes of page-locked host memory (",
              cudaGetErrorString(e), ")");
    }
    std::vector<std::vector<Copy>> copies(groups);
    auto* edge = static_cast<uint8_t*>(edges_);
    for (const Range& r : ranges_) {
        check(r.group < groups, "PinnedSources: group ", r.group, " of ", groups);
        std::vector<Copy>& out = copies[r.group];
        const PageSplit split = split_at_pages(reinterpret_cast<uintptr_t>(r.data), r.bytes, page_size());
        // Up to three copies: the head and tail from the edge buffer, the whole pages from where they are.
        auto from_edges = [&](size_t from, size_t count) {
            if (count == 0) return;
            std::memcpy(edge, r.data + from, count);
            out.push_back({edge, r.dst_offset + from, count});
            edge += count;
        };
        from_edges(0, split.head);
        if (split.body > 0) {
            void* start = const_cast<uint8_t*>(r.data + split.head);
            const cudaError_t e = cudaHostRegister(start, split.body, cudaHostRegisterDefault);
            check(e == cudaSuccess, purpose_, ": cannot page-lock ", (pinned_bytes_ + split.body) / 1e9,
                  " GB of host memory holding the weights (", cudaGetErrorString(e),
                  "); the host needs that much free memory it can lock, ", advice_);
            registered_.push_back(start);
            pinned_bytes_ += split.body;
            out.push_back({start, r.dst_offset + split.head, split.body});
        }
        from_edges(split.head + split.body, split.tail);
    }
    pinned_bytes_ += edge_bytes;
    ranges_.clear();
    return copies;
}

}  // namespace flux2::cuda
