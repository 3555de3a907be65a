#pragma once
// Rows streamed through shared memory by the bulk-copy engine, for row kernels that would otherwise wait on the
// memory's latency: a persistent CTA takes rows blockIdx.x, blockIdx.x + gridDim.x, ..., and while it computes one
// row the next Stages - 1 are already on their way, issued by one thread and costing no registers. A CTA that loads
// its row itself keeps its loads in flight only until the row's first reduction, so the memory idles while an SM's
// CTAs reduce: dev's QK-norm ran at 1.9 TB/s that way and at 2.4 streamed. The LayerNorm, whose row takes three
// CTA-wide reductions, was slower streamed and stays one CTA a row (PERFORMANCE.md).
//
// Use, by every thread of the CTA: start(); then for it = 0, 1, ... while row(it) < rows: wait(it), read the row
// from the buffer, release(it) (a CTA barrier, then the buffer is refilled with row(it + Stages)).
#include <cstdint>

#include "backend/cuda/mbarrier.cuh"

namespace flux2::cuda {

template <int Stages>
class RowStream {
public:
    // Shared memory a stream of rows of row_bytes takes (the buffers, then the barriers).
    static constexpr size_t smem_bytes(uint32_t row_bytes) { return size_t(Stages) * row_bytes + Stages * 8; }

    // smem: smem_bytes(row_bytes), 16-byte aligned. Row r starts at src + r * stride bytes; row_bytes and stride
    // are multiples of 16 and src is 16-byte aligned.
    __device__ RowStream(unsigned char* smem, const void* src, int64_t stride, uint32_t row_bytes, int64_t rows)
        : buffers_(smem),
          bars_(shared_address(smem + size_t(Stages) * row_bytes)),
          src_(static_cast<const unsigned char*>(src)),
          stride_(stride),
          row_bytes_(row_bytes),
          rows_(rows) {}

    __device__ int64_t row(int64_t it) const { return blockIdx.x + it * gridDim.x; }

    __device__ void start() {
        if (threadIdx.x == 0) {
            for (int s = 0; s < Stages; ++s) mbar_init(bar(s), 1);
            mbar_init_fence();
            for (int s = 0; s < Stages; ++s) issue(s);
        }
        __syncthreads();
    }

    // Waits for iteration it's row and returns its buffer.
    __device__ const unsigned char* wait(int64_t it) const {
        const int s = static_cast<int>(it % Stages);
        mbar_wait(bar(s), static_cast<int>((it / Stages) & 1));
        return buffers_ + size_t(s) * row_bytes_;
    }

    // Every thread is done reading iteration it's buffer: it takes row(it + Stages).
    __device__ void release(int64_t it) {
        __syncthreads();
        if (threadIdx.x == 0) {
            fence_proxy_async_shared();
            issue(it + Stages);
        }
    }

private:
    __device__ uint32_t bar(int s) const { return bars_ + 8 * s; }
    // Iteration it's copy, into buffer it % Stages, if that row exists (every copy issued is waited for, so none is
    // in flight when the CTA exits).
    __device__ void issue(int64_t it) {
        const int64_t r = row(it);
        if (r >= rows_) return;
        const int s = static_cast<int>(it % Stages);
        mbar_expect_tx(bar(s), static_cast<int>(row_bytes_));
        bulk_load(shared_address(buffers_ + size_t(s) * row_bytes_), src_ + r * stride_, row_bytes_, bar(s));
    }

    unsigned char* buffers_;
    uint32_t bars_;
    const unsigned char* src_;
    int64_t stride_;
    uint32_t row_bytes_;
    int64_t rows_;
};

}  // namespace flux2::cuda
