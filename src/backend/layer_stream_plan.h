#pragma once
// The host-side decisions of --offload layers (Backend::stream_layers), apart from any device: which groups stay
// resident within the budget, and how a weight's host bytes split at page boundaries for page-locking.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace flux2 {

// Per group, whether it stays resident: the groups that would stream the most bytes first (ties in group order),
// each only if its resident bytes fit what the budget has left. Groups that stream nothing are never chosen.
std::vector<bool> choose_resident_groups(const std::vector<int64_t>& stream_bytes,
                                         const std::vector<int64_t>& resident_bytes, int64_t budget);

// [address, address + bytes) as the bytes before its first whole page, its whole pages, and the bytes after them.
// A range with no whole page is all head.
struct PageSplit {
    size_t head = 0, body = 0, tail = 0;
};
PageSplit split_at_pages(uintptr_t address, size_t bytes, size_t page);

}  // namespace flux2
