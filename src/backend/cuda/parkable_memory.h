#pragma once
// Device memory at a fixed address whose physical pages can be given back and taken again (CUDA's virtual memory
// management: an address range reserved once, physical memory mapped into it and unmapped). The layer streams'
// buffers live here: recorded steps (CUDA graphs) address them directly, so they cannot move, yet under --offload
// layers the text encoder's are idle while the transformer runs and the transformer's while the encoder and the
// VAE do; recorded steps' intermediates (graph_arena.h) live here too. Outside the memory pools, so the backend
// counts these bytes itself (MappedBytes).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace flux2::cuda {

// Bytes of parkable memory mapped now, and their high-water mark since the last reset.
class MappedBytes {
public:
    void add(int64_t bytes);
    int64_t current() const { return current_.load(); }
    int64_t high() const { return high_.load(); }
    void reset_high() { high_.store(current_.load()); }

private:
    std::atomic<int64_t> current_{0}, high_{0};
};

class ParkableMemory {
public:
    // Reserves the addresses for max(bytes, capacity) and maps the first `bytes` of them (both rounded up to the
    // device's allocation granularity; nothing is mapped for 0). `what` names the memory in errors.
    ParkableMemory(size_t bytes, int device, std::shared_ptr<MappedBytes> counter, const char* what,
                   size_t capacity = 0);
    ~ParkableMemory();
    ParkableMemory(const ParkableMemory&) = delete;
    ParkableMemory& operator=(const ParkableMemory&) = delete;

    void* data() const { return reinterpret_cast<void*>(address_); }
    size_t bytes() const { return bytes_; }        // mapped while not parked
    size_t capacity() const { return capacity_; }  // reserved

    bool parked() const { return pieces_.empty(); }
    // Gives the physical memory back; the contents are lost and the addresses stay reserved. No queued work may
    // use the memory any more (the caller synchronizes).
    void park();
    // Maps fresh physical memory at the same addresses (uninitialized). Throws when the device has no room.
    void unpark();
    // From now on `bytes` (at most the capacity) are mapped in one piece, at once unless parked: the contents are
    // lost, as in park(), and the same holds for queued work.
    void resize(size_t bytes);
    // Maps more memory after what is mapped, leaving that (and work queued with it) alone; while parked, only the
    // size to map changes. Pieces mapped this way stay apart until resize() or unpark() maps one piece again.
    void grow(size_t bytes);

private:
    struct Piece {
        size_t offset = 0, bytes = 0;
        unsigned long long handle = 0;  // CUmemGenericAllocationHandle
    };
    size_t round_up(size_t bytes) const { return (bytes + granularity_ - 1) / granularity_ * granularity_; }
    // `bytes` rounded up, checked against the reserved addresses.
    size_t within_capacity(size_t bytes) const;
    void map_piece(size_t offset, size_t bytes);

    int device_ = 0;
    const char* what_ = "";
    size_t granularity_ = 1, bytes_ = 0, capacity_ = 0;
    unsigned long long address_ = 0;  // CUdeviceptr
    std::vector<Piece> pieces_;       // empty while parked
    std::shared_ptr<MappedBytes> counter_;
};

}  // namespace flux2::cuda
