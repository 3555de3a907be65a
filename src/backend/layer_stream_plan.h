#pragma once
// The host-side decisions of --offload layers (Backend::stream_layers), apart from any device: which groups stay
// resident within the budget and where among the streamed ones, which streamed groups travel as E4M3, and how a
// weight's host bytes split at page boundaries for page-locking.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace flux2 {

// Per group, whether it stays resident: the groups that would stream the most bytes first (ties in group order),
// each only if its resident bytes fit what the budget has left. Groups that stream nothing are never chosen.
std::vector<bool> choose_resident_groups(const std::vector<int64_t>& stream_bytes,
                                         const std::vector<int64_t>& resident_bytes, int64_t budget);

// `resident` (from choose_resident_groups) with the resident groups of each class of like groups (the same streamed
// and resident bytes, e.g. dev's 48 single blocks) spread evenly through that class instead of being its first
// ones: as many of each class stay resident, so the bytes on the bus and on the device are the same, but no long
// run of streamed groups is left with nothing to hide its copies behind (two buffers prefetch one group ahead).
std::vector<bool> spread_resident_groups(std::vector<bool> resident, const std::vector<int64_t>& stream_bytes,
                                         const std::vector<int64_t>& resident_bytes);

// `count` of `n` positions spread evenly (the middles of `count` equal parts); all of them when count >= n.
std::vector<bool> pick_evenly(size_t n, size_t count);

// [address, address + bytes) as the bytes before its first whole page, its whole pages, and the bytes after them.
// A range with no whole page is all head.
struct PageSplit {
    size_t head = 0, body = 0, tail = 0;
};
PageSplit split_at_pages(uintptr_t address, size_t bytes, size_t page);

}  // namespace flux2
