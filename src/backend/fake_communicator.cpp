// The in-process FakeCommunicatorGroup: every collective is post (each rank publishes its tensors), wait for all,
// copy (each rank reads what it needs from its peers), wait for all again so no rank frees or overwrites a posted
// tensor while a peer still reads it. The waits are a rendezvous that abort() breaks.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <mutex>

#include "backend/communicator.h"
#include "core/error.h"

namespace flux2 {

struct FakeCommunicatorGroup::State {
    explicit State(int n) : size(n), posted_lists(n), posted(n) {}
    const int size;
    std::vector<const std::vector<Tensor>*> posted_lists;  // all_to_all: each rank's send list
    std::vector<const Tensor*> posted;                     // all_gather, all_reduce_sum: each rank's tensor

    // Returns once every rank has arrived; throws once the group is aborted (also while waiting), unless `leaving`.
    void rendezvous(bool leaving = false) {
        std::unique_lock<std::mutex> lock(mu);
        if (!abort_reason.empty()) {
            if (leaving) return;
            fail("fake communicator: the group was aborted (", abort_reason, ")");
        }
        const int64_t gen = generation;
        if (++arrived == size) {
            arrived = 0;
            ++generation;
            cv.notify_all();
            return;
        }
        cv.wait(lock, [&] { return generation != gen || !abort_reason.empty(); });
        if (generation == gen && !leaving) fail("fake communicator: the group was aborted (", abort_reason, ")");
    }
    void abort(const std::string& why) {
        {
            std::lock_guard<std::mutex> lock(mu);
            if (!abort_reason.empty()) return;
            abort_reason = why.empty() ? "no reason given" : why;
        }
        cv.notify_all();
    }

    std::mutex mu;
    std::condition_variable cv;
    int arrived = 0;
    int64_t generation = 0;
    std::string abort_reason;  // non-empty once aborted
};

namespace {

void check_host_f32(const Tensor& t, const char* what) {
    check(t.device() == Device::cpu && t.dtype() == DType::F32, "fake communicator: ", what,
          " must be a host F32 tensor (the CPU backend's), got ", dtype_name(t.dtype()),
          t.device() == Device::cpu ? " on the host" : " on a device");
}

void copy_chunk(const Tensor& from, Tensor& to, int src, int dst) {
    check_host_f32(to, "a receive tensor");
    check(from.numel() == to.numel(), "fake communicator: rank ", src, " sent ", from.numel(), " elements to rank ",
          dst, ", whose receive tensor holds ", to.numel());
    std::memcpy(to.f32(), from.f32(), from.nbytes());
}

class FakeCommunicator : public Communicator {
public:
    FakeCommunicator(std::shared_ptr<FakeCommunicatorGroup::State> state, int rank)
        : state_(std::move(state)), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return state_->size; }

    void all_to_all(const std::vector<Tensor>& send, std::vector<Tensor>& recv) override {
        check_count(send.size(), "send");
        check_count(recv.size(), "recv");
        for (const Tensor& t : send) check_host_f32(t, "a send tensor");
        state_->posted_lists[rank_] = &send;
        state_->rendezvous();
        for (int p = 0; p < size(); ++p) copy_chunk((*state_->posted_lists[p])[rank_], recv[p], p, rank_);
        state_->rendezvous();
    }

    void all_gather(const Tensor& send, std::vector<Tensor>& recv) override {
        check_count(recv.size(), "recv");
        check_host_f32(send, "the send tensor");
        state_->posted[rank_] = &send;
        state_->rendezvous();
        for (int p = 0; p < size(); ++p) copy_chunk(*state_->posted[p], recv[p], p, rank_);
        state_->rendezvous();
    }

    void all_reduce_sum(Tensor& x) override {
        check_open();
        check_host_f32(x, "the reduced tensor");
        state_->posted[rank_] = &x;
        state_->rendezvous();
        // Every rank sums in rank order into its own buffer, so all ranks get bit-identical results.
        std::vector<float> sum(state_->posted[0]->f32(), state_->posted[0]->f32() + x.numel());
        for (int p = 1; p < size(); ++p) {
            const Tensor& t = *state_->posted[p];
            check(t.numel() == x.numel(), "fake communicator: all_reduce_sum of ", x.numel(), " elements on rank ",
                  rank_, " but ", t.numel(), " on rank ", p);
            for (int64_t i = 0; i < x.numel(); ++i) sum[i] += t.f32()[i];
        }
        state_->rendezvous();  // every rank has read every x before any x is overwritten
        std::copy(sum.begin(), sum.end(), x.f32());
        state_->rendezvous();
    }

    void barrier() override {
        check_open();
        state_->rendezvous();
    }

    // A rendezvous like NCCL's destroy, so that the CPU tests catch a rank that leaves alone (it would wait here).
    void close() override {
        if (closed_) return;
        closed_ = true;
        state_->rendezvous(/*leaving=*/true);
    }

    void abort(const std::string& why) override { state_->abort(why); }

private:
    void check_open() const { check(!closed_, "fake communicator: rank ", rank_, " used after close"); }
    void check_count(size_t n, const char* what) const {
        check_open();
        check(static_cast<int>(n) == size(), "fake communicator: ", what, " must hold one tensor per rank (", size(),
              "), got ", n);
    }
    std::shared_ptr<FakeCommunicatorGroup::State> state_;
    int rank_;
    bool closed_ = false;
};

}  // namespace

FakeCommunicatorGroup::FakeCommunicatorGroup(int size) {
    check(size >= 1, "fake communicator: the group needs at least one rank, got ", size);
    state_ = std::make_shared<State>(size);
}

FakeCommunicatorGroup::~FakeCommunicatorGroup() = default;

int FakeCommunicatorGroup::size() const { return state_->size; }

std::shared_ptr<Communicator> FakeCommunicatorGroup::rank(int r) {
    check(r >= 0 && r < size(), "fake communicator: rank must be in [0, ", size(), "), got ", r);
    return std::make_shared<FakeCommunicator>(state_, r);
}

std::shared_ptr<Communicator> FakeCommunicatorGroup::join(int r, Backend& backend) {
    check(backend.name() == "cpu", "fake communicator: rank ", r, " needs the CPU backend, got the ", backend.name(),
          " backend");
    return rank(r);
}

}  // namespace flux2
