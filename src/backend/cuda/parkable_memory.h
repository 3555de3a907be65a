#pragma once
// Device memory at a fixed address whose physical pages can be given back and taken again (CUDA's virtual memory
// management: an address range reserved once, physical memory mapped into it and unmapped). The layer streams'
// buffers live here: recorded steps (CUDA graphs) address them directly, so they cannot move, yet under --offload
// layers the text encoder's are idle while the transformer runs and the transformer's while the encoder and the
// VAE do. Outside the memory pools, so the backend counts these bytes itself (MappedBytes).
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

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
    // Reserves the addresses for `bytes` (rounded up to the device's allocation granularity) and maps them.
    ParkableMemory(size_t bytes, int device, std::shared_ptr<MappedBytes> counter);
    ~ParkableMemory();
    ParkableMemory(const ParkableMemory&) = delete;
    ParkableMemory& operator=(const ParkableMemory&) = delete;

    void* data() const { return reinterpret_cast<void*>(address_); }
    size_t bytes() const { return bytes_; }
    bool parked() const { return handle_ == 0; }
    // Gives the physical memory back; the contents are lost and the addresses stay reserved. No queued work may
    // use the memory any more (the caller synchronizes).
    void park();
    // Maps fresh physical memory at the same addresses (uninitialized). Throws when the device has no room.
    void unpark();

private:
    int device_ = 0;
    size_t bytes_ = 0;
    unsigned long long address_ = 0;  // CUdeviceptr
    unsigned long long handle_ = 0;   // CUmemGenericAllocationHandle; 0 while parked
    std::shared_ptr<MappedBytes> counter_;
};

}  // namespace flux2::cuda
