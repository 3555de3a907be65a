#pragma once
// Offsets for the allocations of a recorded step (a CUDA graph) inside one arena, decided on the host while the step
// records. A recording runs on one stream in the order it was recorded, so a block given back on the host is free on
// the device for everything recorded after it: the plan needs no events and no device calls, only the sizes in
// order. Best fit: a request goes to the smallest free gap that holds it (the lowest offset among equal gaps), a gap
// given back merges with its neighbours, and the arena's end moves only when no gap fits; high() is what the arena
// must map. Unlike the driver's pool for graph allocations, gaps need no page alignment, and every recording can
// start from offset 0 of the same arena.
#include <cstddef>
#include <map>
#include <set>
#include <unordered_map>
#include <utility>

namespace flux2 {

class ArenaPlan {
public:
    // Every offset is a multiple of this (cudaMalloc's guarantee, which kernels with vector loads rely on).
    static constexpr size_t alignment = 256;

    // The offset of a new block of `bytes` (at least one alignment unit is taken).
    size_t take(size_t bytes);
    // Gives back the block at `offset`; fails for an offset take() did not return or already got back.
    void give(size_t offset);

    size_t high() const { return high_; }            // the arena's end at its furthest: the bytes to map
    size_t live() const { return live_; }            // bytes in blocks not given back
    size_t live_high() const { return live_high_; }  // live() at its largest: what no plan can go below
    size_t blocks() const { return used_.size(); }

private:
    void add_gap(size_t offset, size_t bytes);
    void remove_gap(std::map<size_t, size_t>::iterator gap);

    std::map<size_t, size_t> gaps_;                // offset -> bytes, free space below end_
    std::set<std::pair<size_t, size_t>> by_size_;  // (bytes, offset) of the same gaps, for the best fit
    std::unordered_map<size_t, size_t> used_;      // offset -> bytes of the blocks taken
    size_t end_ = 0, high_ = 0, live_ = 0, live_high_ = 0;
};

}  // namespace flux2
