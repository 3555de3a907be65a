#include "backend/arena_plan.h"

#include <algorithm>
#include <iterator>

#include "core/error.h"

namespace flux2 {

size_t ArenaPlan::take(size_t bytes) {
    bytes = (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
    size_t offset = 0;
    const auto fit = by_size_.lower_bound({bytes, 0});
    if (fit != by_size_.end()) {
        offset = fit->second;
        const size_t gap = fit->first;
        remove_gap(gaps_.find(offset));
        if (gap > bytes) add_gap(offset + bytes, gap - bytes);
    } else {
        // Free space at the top is never a gap (give() lowers the end instead), so the end moves by `bytes`.
        offset = end_;
        end_ += bytes;
    }
    used_.emplace(offset, bytes);
    high_ = std::max(high_, end_);
    live_ += bytes;
    live_high_ = std::max(live_high_, live_);
    return offset;
}

void ArenaPlan::give(size_t offset) {
    const auto block = used_.find(offset);
    check(block != used_.end(), "arena plan: no block at offset ", offset, " to give back");
    size_t bytes = block->second;
    used_.erase(block);
    live_ -= bytes;
    // Merge with the gap just after and the one just before.
    const auto after = gaps_.find(offset + bytes);
    if (after != gaps_.end()) {
        bytes += after->second;
        remove_gap(after);
    }
    const auto next = gaps_.lower_bound(offset);
    if (next != gaps_.begin()) {
        const auto before = std::prev(next);
        if (before->first + before->second == offset) {
            offset = before->first;
            bytes += before->second;
            remove_gap(before);
        }
    }
    if (offset + bytes == end_) {
        end_ = offset;  // the top of the arena is free again: no gap, the end comes down
    } else {
        add_gap(offset, bytes);
    }
}

void ArenaPlan::add_gap(size_t offset, size_t bytes) {
    gaps_.emplace(offset, bytes);
    by_size_.emplace(bytes, offset);
}

void ArenaPlan::remove_gap(std::map<size_t, size_t>::iterator gap) {
    by_size_.erase({gap->second, gap->first});
    gaps_.erase(gap);
}

}  // namespace flux2
