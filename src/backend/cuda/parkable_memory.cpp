#include "backend/cuda/parkable_memory.h"

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "backend/cuda/cuda_check.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2::cuda {

namespace {

// The driver's virtual-memory calls, looked up through the runtime: linking libcuda itself would keep the binary
// from starting on machines without a GPU driver.
struct Driver {
    PFN_cuMemAddressReserve_v10020 reserve = nullptr;
    PFN_cuMemAddressFree_v10020 free_address = nullptr;
    PFN_cuMemCreate_v10020 create = nullptr;
    PFN_cuMemRelease_v10020 release = nullptr;
    PFN_cuMemMap_v10020 map = nullptr;
    PFN_cuMemUnmap_v10020 unmap = nullptr;
    PFN_cuMemSetAccess_v10020 set_access = nullptr;
    PFN_cuMemGetAllocationGranularity_v10020 granularity = nullptr;
    PFN_cuGetErrorString_v6000 error_string = nullptr;
};

const Driver& driver() {
    static const Driver d = [] {
        Driver d;
        look_up_driver("cuMemAddressReserve", 10020, d.reserve);
        look_up_driver("cuMemAddressFree", 10020, d.free_address);
        look_up_driver("cuMemCreate", 10020, d.create);
        look_up_driver("cuMemRelease", 10020, d.release);
        look_up_driver("cuMemMap", 10020, d.map);
        look_up_driver("cuMemUnmap", 10020, d.unmap);
        look_up_driver("cuMemSetAccess", 10020, d.set_access);
        look_up_driver("cuMemGetAllocationGranularity", 10020, d.granularity);
        look_up_driver("cuGetErrorString", 6000, d.error_string);
        return d;
    }();
    return d;
}

std::string driver_error(CUresult r) {
    const char* s = nullptr;
    if (driver().error_string(r, &s) != CUDA_SUCCESS || s == nullptr) return "CUresult " + std::to_string(r);
    return s;
}

void check_driver(CUresult r, const char* call, const char* file, int line) {
    if (r != CUDA_SUCCESS) fail_call("CUDA driver", call, file, line, driver_error(r));
}
#define FLUX2_CU_CHECK(expr) check_driver((expr), #expr, __FILE__, __LINE__)

CUmemAllocationProp device_memory(int device) {
    CUmemAllocationProp prop{};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device;
    return prop;
}

}  // namespace

void MappedBytes::add(int64_t bytes) {
    const int64_t now = current_.fetch_add(bytes) + bytes;
    int64_t high = high_.load();
    while (now > high && !high_.compare_exchange_weak(high, now)) {
    }
}

ParkableMemory::ParkableMemory(size_t bytes, int device, std::shared_ptr<MappedBytes> counter, const char* what,
                               size_t capacity)
    : device_(device), what_(what), counter_(std::move(counter)) {
    FLUX2_CUDA_CHECK(cudaSetDevice(device_));
    const Driver& d = driver();
    const CUmemAllocationProp prop = device_memory(device);
    FLUX2_CU_CHECK(d.granularity(&granularity_, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    bytes_ = round_up(bytes);
    capacity_ = std::max(round_up(std::max<size_t>(capacity, 1)), bytes_);
    CUdeviceptr address = 0;
    FLUX2_CU_CHECK(d.reserve(&address, capacity_, granularity_, 0, 0));
    address_ = address;
    try {
        unpark();
    } catch (...) {
        d.free_address(address, capacity_);
        throw;
    }
}

ParkableMemory::~ParkableMemory() {
    // Destructors cannot throw: report and go on.
    const Driver& d = driver();
    for (const Piece& p : pieces_) {
        if (d.unmap(address_ + p.offset, p.bytes) == CUDA_SUCCESS) d.release(p.handle);
        counter_->add(-static_cast<int64_t>(p.bytes));
    }
    const CUresult r = d.free_address(address_, capacity_);
    if (r != CUDA_SUCCESS && r != CUDA_ERROR_DEINITIALIZED)
        log_error("cuda: freeing parkable device addresses failed: ", driver_error(r));
}

void ParkableMemory::park() {
    if (parked()) return;
    FLUX2_CUDA_CHECK(cudaSetDevice(device_));  // the driver calls act on the calling thread's current context
    const Driver& d = driver();
    while (!pieces_.empty()) {
        const Piece p = pieces_.back();
        FLUX2_CU_CHECK(d.unmap(address_ + p.offset, p.bytes));
        FLUX2_CU_CHECK(d.release(p.handle));
        pieces_.pop_back();
        counter_->add(-static_cast<int64_t>(p.bytes));
    }
}

void ParkableMemory::unpark() {
    if (!parked() || bytes_ == 0) return;
    map_piece(0, bytes_);
}

void ParkableMemory::map_piece(size_t offset, size_t bytes) {
    FLUX2_CUDA_CHECK(cudaSetDevice(device_));  // as in park(): a server's worker thread may call first
    const Driver& d = driver();
    const CUmemAllocationProp prop = device_memory(device_);
    CUmemGenericAllocationHandle handle = 0;
    const CUresult created = d.create(&handle, bytes, &prop, 0);
    check(created == CUDA_SUCCESS, "cuda: cannot map ", bytes / 1e9, " GB of device memory for ", what_, " (",
          driver_error(created), ")");
    CUmemAccessDesc access{};
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    const CUdeviceptr at = address_ + offset;
    CUresult r = d.map(at, bytes, 0, handle, 0);
    if (r == CUDA_SUCCESS) {
        r = d.set_access(at, bytes, &access, 1);
        if (r != CUDA_SUCCESS) d.unmap(at, bytes);
    }
    if (r != CUDA_SUCCESS) {
        d.release(handle);
        FLUX2_CU_CHECK(r);
    }
    pieces_.push_back({offset, bytes, handle});
    counter_->add(static_cast<int64_t>(bytes));
}

size_t ParkableMemory::within_capacity(size_t bytes) const {
    bytes = round_up(bytes);
    check(bytes <= capacity_, "cuda: ", bytes / 1e9, " GB of ", what_, " exceed the ", capacity_ / 1e9,
          " GB reserved for them");
    return bytes;
}

void ParkableMemory::resize(size_t bytes) {
    bytes = within_capacity(bytes);
    if (bytes == bytes_ && pieces_.size() <= 1) return;
    const bool mapped = !parked();
    park();
    bytes_ = bytes;
    if (mapped) unpark();
}

void ParkableMemory::grow(size_t bytes) {
    bytes = within_capacity(bytes);
    if (bytes <= bytes_) return;
    if (!parked()) map_piece(bytes_, bytes - bytes_);
    bytes_ = bytes;
}

}  // namespace flux2::cuda
