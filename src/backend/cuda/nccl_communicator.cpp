#include "backend/cuda/nccl_communicator.h"

#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "core/error.h"

namespace flux2 {

namespace {

void check_nccl(ncclResult_t status, const char* expr, const char* file, int line) {
    if (status != ncclSuccess) cuda::fail_call("NCCL", expr, file, line, ncclGetErrorString(status));
}
#define FLUX2_NCCL_CHECK(expr) check_nccl((expr), #expr, __FILE__, __LINE__)

void check_device(const Tensor& t, const char* what) {
    check(t.device() != Device::cpu, "NCCL communicator: ", what, " must be on the GPU, got a host tensor");
}

ncclDataType_t reduce_type(DType dtype) {
    switch (dtype) {
        case DType::BF16:
            return ncclBfloat16;
        case DType::F16:
            return ncclHalf;
        case DType::F32:
            return ncclFloat32;
        default:
            fail("NCCL communicator: all_reduce_sum takes BF16, F16 or F32 tensors, got ", dtype_name(dtype));
    }
}

class NcclCommunicator;

// What the ranks of one group share: its members, so that one rank's abort reaches every rank's communicator.
struct NcclGroupState {
    std::mutex mu;
    std::vector<NcclCommunicator*> members;
    std::string abort_reason;  // non-empty once aborted
    void abort(const std::string& why);
};

class NcclCommunicator : public Communicator {
public:
    // ncclCommInitRank binds the communicator to the calling thread's current GPU: the one that made `backend`
    // (rank threads make their own backends).
    NcclCommunicator(const ncclUniqueId& id, int rank, int size, CudaBackend& backend,
                     std::shared_ptr<NcclGroupState> group)
        : backend_(backend), rank_(rank), size_(size), group_(std::move(group)) {
        FLUX2_NCCL_CHECK(ncclCommInitRank(&comm_, size, id, rank));
        FLUX2_CUDA_CHECK(cudaMalloc(&token_, sizeof(float)));
        std::lock_guard<std::mutex> lock(group_->mu);
        group_->members.push_back(this);
    }
    ~NcclCommunicator() override {
        {
            std::lock_guard<std::mutex> lock(group_->mu);
            std::erase(group_->members, this);
        }
        // Normally closed already (by every rank together); destroying it alone here could wait forever. An aborted
        // one is freed by the abort.
        if (comm_ && !aborted_) ncclCommDestroy(comm_);
        cudaFree(token_);
    }

    void abort(const std::string& why) override { group_->abort(why); }
    // With the group's mutex held (NcclGroupState::abort): ncclCommAbort makes this rank's pending NCCL kernels
    // return, so a thread waiting on its stream comes back; later calls fail in check_open.
    void abort_locked() {
        if (aborted_.exchange(true) || !comm_) return;
        ncclCommAbort(comm_);
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }

    // Point-to-point in one group: chunks may differ in size between peers (uneven token shards).
    // ncclCommDestroy is collective: it returns once every rank has called it and every CUDA graph holding this
    // communicator's calls is destroyed.
    void close() override {
        if (!comm_ || aborted_) return;
        ncclComm_t comm = comm_;
        comm_ = nullptr;
        FLUX2_NCCL_CHECK(ncclCommDestroy(comm));
    }

    void all_to_all(const std::vector<Tensor>& send, std::vector<Tensor>& recv) override {
        check_count(send.size(), "send");
        check_count(recv.size(), "recv");
        double sent = 0.0;
        for (int p = 0; p < size_; ++p) sent += p == rank_ ? 0.0 : static_cast<double>(send[p].nbytes());
        auto timed = backend_.profile_op([] { return "nccl all_to_all"; }, 0.0, sent);
        FLUX2_NCCL_CHECK(ncclGroupStart());
        for (int p = 0; p < size_; ++p) {
            check_device(send[p], "a send tensor");
            check_device(recv[p], "a receive tensor");
            FLUX2_NCCL_CHECK(ncclSend(send[p].raw(), send[p].nbytes(), ncclChar, p, comm_, stream()));
            FLUX2_NCCL_CHECK(ncclRecv(recv[p].raw(), recv[p].nbytes(), ncclChar, p, comm_, stream()));
        }
        FLUX2_NCCL_CHECK(ncclGroupEnd());
    }

    void all_gather(const Tensor& send, std::vector<Tensor>& recv) override {
        check_count(recv.size(), "recv");
        check_device(send, "the send tensor");
        auto timed = backend_.profile_op([] { return "nccl all_gather"; }, 0.0,
                                         static_cast<double>(send.nbytes()) * (size_ - 1));
        FLUX2_NCCL_CHECK(ncclGroupStart());
        for (int p = 0; p < size_; ++p) {
            check_device(recv[p], "a receive tensor");
            FLUX2_NCCL_CHECK(ncclSend(send.raw(), send.nbytes(), ncclChar, p, comm_, stream()));
            FLUX2_NCCL_CHECK(ncclRecv(recv[p].raw(), recv[p].nbytes(), ncclChar, p, comm_, stream()));
        }
        FLUX2_NCCL_CHECK(ncclGroupEnd());
    }

    void all_reduce_sum(Tensor& x) override {
        check_open();
        check_device(x, "the reduced tensor");
        // A ring all-reduce sends 2(n-1)/n of the tensor from every rank (NCCL's "bus bandwidth" convention).
        auto timed = backend_.profile_op([] { return "nccl all_reduce"; }, 0.0,
                                         2.0 * static_cast<double>(x.nbytes()) * (size_ - 1) / size_);
        FLUX2_NCCL_CHECK(ncclAllReduce(x.raw(), x.raw(), x.numel(), reduce_type(x.dtype()), ncclSum, comm_, stream()));
    }

    // A one-element all-reduce, then waiting for the stream: every rank has arrived and its work is done.
    void barrier() override {
        check_open();
        FLUX2_NCCL_CHECK(ncclAllReduce(token_, token_, 1, ncclFloat32, ncclSum, comm_, stream()));
        FLUX2_CUDA_CHECK(cudaStreamSynchronize(stream()));
        check_open();  // an abort while waiting ends the wait, not the failure
    }

private:
    cudaStream_t stream() const { return backend_.stream(); }
    void check_open() const {
        check(comm_ != nullptr, "NCCL communicator: rank ", rank_, " used after close");
        if (aborted_) {
            std::lock_guard<std::mutex> lock(group_->mu);
            fail("NCCL communicator: the group was aborted (", group_->abort_reason, ")");
        }
    }
    void check_count(size_t n, const char* what) const {
        check_open();
        check(static_cast<int>(n) == size_, "NCCL communicator: ", what, " must hold one tensor per rank (", size_,
              "), got ", n);
    }
    CudaBackend& backend_;
    int rank_, size_;
    std::shared_ptr<NcclGroupState> group_;
    std::atomic<bool> aborted_{false};
    ncclComm_t comm_ = nullptr;
    void* token_ = nullptr;
};

void NcclGroupState::abort(const std::string& why) {
    std::lock_guard<std::mutex> lock(mu);
    if (!abort_reason.empty()) return;
    abort_reason = why.empty() ? "no reason given" : why;
    for (NcclCommunicator* c : members) c->abort_locked();
}

class NcclGroup final : public CommunicatorGroup {
public:
    explicit NcclGroup(int size) : size_(size) { FLUX2_NCCL_CHECK(ncclGetUniqueId(&id_)); }
    int size() const override { return size_; }
    std::shared_ptr<Communicator> join(int rank, Backend& backend) override {
        auto* cuda = dynamic_cast<CudaBackend*>(&backend);
        check(cuda != nullptr, "NCCL communicator: rank ", rank, " needs a CUDA backend, got the ", backend.name(),
              " backend");
        check(rank >= 0 && rank < size_, "NCCL communicator: rank must be in [0, ", size_, "), got ", rank);
        return std::make_shared<NcclCommunicator>(id_, rank, size_, *cuda, state_);
    }

private:
    ncclUniqueId id_;
    int size_;
    std::shared_ptr<NcclGroupState> state_ = std::make_shared<NcclGroupState>();
};

}  // namespace

std::shared_ptr<CommunicatorGroup> make_nccl_group(int size) {
    check(size >= 1, "NCCL communicator: the group needs at least one rank, got ", size);
    return std::make_shared<NcclGroup>(size);
}

}  // namespace flux2
