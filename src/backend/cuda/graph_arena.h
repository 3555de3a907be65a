#pragma once
// The device memory of recorded steps' intermediates (CUDA graphs). While a step records, its allocations are blocks
// of one reserved address range placed by an ArenaPlan on the host (device_memory.cpp); physical memory is mapped as
// the plan grows and, once recorded, in one piece for the plan's high-water mark. The driver's own pool for graph
// allocations (memory nodes) held dev's 1024² step at 0.94 GB where this best fit needs 0.82 (docs/PERFORMANCE.md). All
// recordings of a backend share the range from offset 0: they replay on the backend's one stream, one after the other,
// so the memory mapped is the largest recording's, not their sum.
#include <cstddef>
#include <memory>
#include <mutex>
#include <set>

#include "backend/cuda/device_memory.h"
#include "backend/cuda/parkable_memory.h"

namespace flux2::cuda {

class GraphArena : public std::enable_shared_from_this<GraphArena> {
public:
    // Reserves addresses for `capacity` bytes (the device's memory) and maps nothing yet.
    GraphArena(std::shared_ptr<Stream> stream, size_t capacity, std::shared_ptr<MappedBytes> counter);

    void* base() const { return memory_.data(); }
    size_t mapped_bytes() const { return memory_.parked() ? 0 : memory_.bytes(); }

    // For a recording about to start: keeps the arena mapped while the ops are recorded (as a recording's lease
    // does), since the runtime checks the addresses of copies as it records them.
    std::shared_ptr<void> record();
    // While recording: maps the arena up to at least `bytes` (the plan so far), leaving what is mapped alone.
    void cover(size_t bytes);
    // A recording whose plan reaches `high` bytes: maps that much in one piece, or more for other recordings (no
    // queued work may use the arena: the caller synchronizes). The recording keeps the lease; with the last lease
    // gone the memory is unmapped.
    std::shared_ptr<void> hold(size_t high);
    // Unmaps the memory (no queued work may use it); map() maps it again, for the largest recording held then.
    void park();
    void map();

private:
    std::shared_ptr<void> lease(size_t need);
    void release(std::multiset<size_t>::iterator need);

    std::shared_ptr<Stream> stream_;
    ParkableMemory memory_;
    std::mutex mutex_;  // leases may go on any thread (a server's requests end on their own)
    std::multiset<size_t> needs_;
};

}  // namespace flux2::cuda
