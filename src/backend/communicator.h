#pragma once
// Collectives between the ranks that run one model together (several GPUs for one image, docs/CUDA.md "Several
// GPUs"). Each rank drives its own Backend; a Communicator moves that backend's tensors between ranks. Every rank
// must call the same collectives in the same order (as with NCCL): a rank that skips one leaves the others waiting.
//
// Chunks are whole tensors, not ranges of one buffer, so ranks may hold different numbers of tokens (a sequence
// of 15 tokens on 2 ranks is 8 + 7): a receive tensor is sized by the caller for what its peer sends.
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "tensor/tensor.h"

namespace flux2 {

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;

    // send[p] goes to rank p; recv[p] is overwritten with what rank p sent to this one (send[rank] to itself).
    // Both hold size() tensors; recv[p] must have the element count of rank p's send[rank].
    virtual void all_to_all(const std::vector<Tensor>& send, std::vector<Tensor>& recv) = 0;
    // recv[p] is overwritten with rank p's `send` (size() tensors, sized by the caller).
    virtual void all_gather(const Tensor& send, std::vector<Tensor>& recv) = 0;
    // x becomes the elementwise sum of every rank's x (same shape on every rank).
    virtual void all_reduce_sum(Tensor& x) = 0;
    // Returns once every rank has reached it (and, on a GPU, its earlier collectives have completed).
    virtual void barrier() = 0;
    // Leaves the group, collectively like the exchanges: every rank calls it, at about the same time, after its
    // last exchange. NCCL's destroy waits for all ranks, and for every CUDA graph that recorded its calls to be gone
    // first, so recordings must be dropped before (Flux2Transformer::leave_rank_group). Any call after it fails; a
    // second close does nothing.
    virtual void close() = 0;
    // A rank failed mid-step: any rank may call this, from any thread, at any time, so that no rank waits forever
    // in a collective its failed peer will never join. Every collective of every rank of the group that is
    // waiting or comes later then fails with an Error naming `why`; close() returns without waiting. The group
    // cannot be used again. A second abort does nothing.
    virtual void abort(const std::string& why) = 0;
};

// The ranks of one group before they join it: made once for `size` ranks, then every rank's thread joins with the
// backend it drives. Every rank must join: NCCL's join returns only once all have.
class CommunicatorGroup {
public:
    virtual ~CommunicatorGroup() = default;
    virtual int size() const = 0;
    virtual std::shared_ptr<Communicator> join(int rank, Backend& backend) = 0;
};

// The group for backends of `device` ("cpu": FakeCommunicatorGroup; "cuda", "cuda:N": NCCL, in builds with CUDA).
std::shared_ptr<CommunicatorGroup> make_communicator_group(const std::string& device, int size);

// N ranks as N threads of one process sharing host memory: the collectives of the CPU backend, for tests of the
// sharded math against the single-device path. Tensors must be host F32.
class FakeCommunicatorGroup final : public CommunicatorGroup {
public:
    explicit FakeCommunicatorGroup(int size);
    ~FakeCommunicatorGroup() override;
    int size() const override;
    // The communicator of one rank; each rank's thread uses its own.
    std::shared_ptr<Communicator> rank(int r);
    std::shared_ptr<Communicator> join(int r, Backend& backend) override;

    struct State;

private:
    std::shared_ptr<State> state_;
};

}  // namespace flux2
