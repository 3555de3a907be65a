#pragma once
// Device-side timing of the backend's ops (Backend::start_profile / profile_report, `flux2 bench --profile`):
// a CUDA event before and after each op on the backend's stream, summed per op name after one wait at the end.
// Inactive, a scope costs one branch; no event is recorded and nothing synchronizes.
#include <cuda_runtime.h>

#include <string>
#include <utility>
#include <vector>

namespace flux2::cuda {

class OpProfiler {
public:
    OpProfiler() = default;
    ~OpProfiler();
    OpProfiler(const OpProfiler&) = delete;
    OpProfiler& operator=(const OpProfiler&) = delete;

    // Marks the end of one op when it goes out of scope.
    class Scope {
    public:
        Scope() = default;
        Scope(OpProfiler* owner, size_t record) : owner_(owner), record_(record) {}
        Scope(Scope&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), record_(o.record_) {}
        Scope& operator=(Scope&&) = delete;
        ~Scope() {
            if (owner_) owner_->close(record_);
        }

    private:
        OpProfiler* owner_ = nullptr;
        size_t record_ = 0;
    };

    void start(cudaStream_t stream);
    bool active() const { return stream_ != nullptr; }
    // `name` is only called while profiling (so GEMM labels with shapes cost nothing otherwise); `flops` > 0 adds
    // a TFLOP/s column for that op, `bytes` > 0 (what a collective sends to other ranks) a GB/s column. Ops named
    // "nccl ..." are summed into a communication line.
    template <class NameFn>
    Scope scope(NameFn&& name, double flops = 0.0, double bytes = 0.0) {
        if (!active()) return Scope();
        return Scope(this, open(std::string(name()), flops, bytes));
    }
    // Waits for the stream, then returns the table and stops profiling.
    std::string report();

private:
    struct Record {
        std::string name;
        double flops = 0.0, bytes = 0.0;
        cudaEvent_t begin = nullptr, end = nullptr;
    };
    size_t open(std::string name, double flops, double bytes);
    void close(size_t record);
    cudaEvent_t next_event();

    cudaStream_t stream_ = nullptr;
    std::vector<Record> records_;
    std::vector<cudaEvent_t> events_;  // pool, reused across profiles
    size_t events_used_ = 0;
};

}  // namespace flux2::cuda
