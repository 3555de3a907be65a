#include "models/flux2/flux2_rank_group.h"

#include <condition_variable>
#include <mutex>
#include <thread>

#include "backend/communicator.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2 {

namespace {

class RankWorkers final : public ForwardPeers, public GuidancePeer {
public:
    RankWorkers(int size, Parallelism mode, int tp, std::function<BackendOptions(int)> options_of, RankLoader load)
        : mode_(mode), tp_(tp), options_of_(std::move(options_of)), load_(std::move(load)), ranks_(size - 1) {}

    ~RankWorkers() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
        for (Rank& r : ranks_)
            if (r.thread.joinable()) r.thread.join();
    }

    // A rank's communicators: tp for tensor parallelism, sp for Ulysses (both for ulysses_tp).
    struct Comms {
        std::shared_ptr<Communicator> tp, sp;
    };

    // Loads every rank, then joins them all (rank 0 on the calling thread: an NCCL join returns only once every
    // rank has joined).
    Comms start(Backend& rank0_backend) {
        for (size_t i = 0; i < ranks_.size(); ++i)
            ranks_[i].thread = std::thread([this, i] { run(static_cast<int>(i)); });
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return loaded_ == static_cast<int>(ranks_.size()); });
        for (size_t i = 0; i < ranks_.size(); ++i)
            if (ranks_[i].error) {
                stop_ = true;
                lock.unlock();
                cv_.notify_all();
                std::rethrow_exception(ranks_[i].error);
            }
        join_ = true;
        if (mode_ == Parallelism::cfg) {  // two whole models, nothing exchanged inside a step
            lock.unlock();
            cv_.notify_all();
            return {};
        }
        const int size = static_cast<int>(ranks_.size()) + 1;
        if (mode_ == Parallelism::ulysses_tp) {
            for (int row = 0; row < size / tp_; ++row)
                row_groups_.push_back(make_communicator_group(rank0_backend.name(), tp_));
            for (int col = 0; col < tp_; ++col)
                column_groups_.push_back(make_communicator_group(rank0_backend.name(), size / tp_));
        } else {
            row_groups_.push_back(make_communicator_group(rank0_backend.name(), size));
        }
        lock.unlock();
        cv_.notify_all();
        return join_groups(0, rank0_backend);
    }

    // Every rank joins its row's group, then its column's (the same order everywhere, so no NCCL join waits on a
    // rank that is joining another group first).
    Comms join_groups(int rank, Backend& backend) {
        Comms c;
        if (mode_ == Parallelism::ulysses_tp) {
            c.tp = row_groups_[rank / tp_]->join(rank % tp_, backend);
            c.sp = column_groups_[rank % tp_]->join(rank / tp_, backend);
        } else if (mode_ == Parallelism::tensor) {
            c.tp = row_groups_[0]->join(rank, backend);
        } else {
            c.sp = row_groups_[0]->join(rank, backend);
        }
        return c;
    }

    void begin_uncond(const Flux2Inputs& uncond) override { begin_forward(uncond); }
    Tensor end_uncond() override {
        end_forward();
        return std::move(output_);
    }

    void begin_forward(const Flux2Inputs& in) override {
        std::lock_guard<std::mutex> lock(mu_);
        inputs_ = in;
        // The pipeline keeps the prompt embeddings on rank 0's device for a whole generation: the other ranks get
        // one host copy of each such tensor (kept by identity, so its storage cannot be reused meanwhile).
        const Tensor& context = in.encoder_hidden_states;
        if (context.device() != Device::cpu) {
            if (context.storage() != context_source_.storage() || context.raw() != context_source_.raw()) {
                context_source_ = context;
                context_host_ = rank0_backend_->download(context);
            }
            inputs_.encoder_hidden_states = context_host_;
        }
        post_job(/*loras=*/false);
    }

    void set_loras(const std::vector<ActiveLora>& loras) override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            loras_ = loras;
            post_job(/*loras=*/true);
        }
        end_forward();
    }

    void end_forward() override {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return done_ == static_cast<int>(ranks_.size()); });
        for (Rank& r : ranks_)
            if (r.error) std::rethrow_exception(r.error);
    }

    void leave() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
        }
        cv_.notify_all();
    }

    void set_rank0_backend(Backend& be) { rank0_backend_ = &be; }

    void join(Flux2Transformer& model, Comms comms, std::shared_ptr<ForwardPeers> peers) {
        if (mode_ == Parallelism::cfg) return;  // rank 0's guidance peer is set by start_rank_group
        if (comms.tp && comms.sp) {
            model.set_tensor_parallel(std::move(comms.tp), nullptr);  // shards first; Ulysses then moves its heads
            model.set_sequence_parallel(std::move(comms.sp), std::move(peers));
        } else if (comms.sp) {
            model.set_sequence_parallel(std::move(comms.sp), std::move(peers));
        } else {
            model.set_tensor_parallel(std::move(comms.tp), std::move(peers));
        }
    }

private:
    struct Rank {
        std::thread thread;
        std::exception_ptr error;
    };

    // Rank i + 1: everything it touches (backend, model, communicator) is made and destroyed on this thread.
    void run(int i) {
        const int rank = i + 1;
        std::unique_ptr<Backend> backend;
        std::unique_ptr<Flux2Transformer> model;
        try {
            backend = make_backend(options_of_(rank));
            model = std::make_unique<Flux2Transformer>(load_(*backend));
        } catch (...) {
            ranks_[i].error = std::current_exception();
        }
        std::unique_lock<std::mutex> lock(mu_);
        ++loaded_;
        cv_.notify_all();
        cv_.wait(lock, [&] { return join_ || stop_; });
        // Once rank 0 joined, this rank joins too even if rank 0 is already leaving (it may have been slow to get
        // here): the leave is collective and waits for it. Stopped before the join: the start failed, no group.
        if (!join_) return;
        lock.unlock();
        try {
            if (mode_ != Parallelism::cfg) join(*model, join_groups(rank, *backend), nullptr);
        } catch (...) {
            // Rank 0 shards the same way and reports the same error.
            ranks_[i].error = std::current_exception();
            return;
        }
        lock.lock();
        for (int64_t seen = 0;;) {
            cv_.wait(lock, [&] { return job_ != seen || stop_; });
            if (stop_) {
                lock.unlock();
                leave_with_rank0(*model, rank);
                return;
            }
            seen = job_;
            const bool loras = job_is_loras_;
            lock.unlock();
            try {
                if (loras) {
                    model->set_loras(loras_);
                } else {
                    Tensor y = model->forward(inputs_);
                    if (mode_ == Parallelism::cfg) output_ = std::move(y);  // rank 0 reads it after end_forward
                }
            } catch (...) {
                ranks_[i].error = std::current_exception();
                // Rank 0 and the others may be waiting in an exchange this rank will not join.
                if (!loras) model->abort_rank_group(str("rank ", rank, " failed: ", current_exception_message()));
            }
            lock.lock();
            ++done_;
            cv_.notify_all();
        }
    }

    // With mu_ held: the ranks pick up the next job (the inputs or adapters it reads are set).
    void post_job(bool loras) {
        job_is_loras_ = loras;
        for (Rank& r : ranks_) r.error = nullptr;
        done_ = 0;
        ++job_;
        cv_.notify_all();
    }

    // Rank 0 is leaving (its destructor): this rank leaves with it, so that the collective close completes.
    static void leave_with_rank0(Flux2Transformer& model, int rank) {
        try {
            model.leave_rank_group();
        } catch (const std::exception& e) {
            log_warn("rank ", rank, " leaving its group: ", e.what());
        }
    }

    Parallelism mode_;
    int tp_;  // ulysses_tp: ranks per row
    std::function<BackendOptions(int)> options_of_;
    RankLoader load_;
    std::vector<Rank> ranks_;
    Backend* rank0_backend_ = nullptr;
    // One group of every rank, or (ulysses_tp) one per row and one per column of the grid.
    std::vector<std::shared_ptr<CommunicatorGroup>> row_groups_, column_groups_;

    std::mutex mu_;
    std::condition_variable cv_;
    int loaded_ = 0, done_ = 0;
    int64_t job_ = 0;
    bool join_ = false, stop_ = false;
    bool job_is_loras_ = false;      // the current job: set_loras, else a forward
    std::vector<ActiveLora> loras_;  // set_loras' adapters, read by the ranks during that job
    Flux2Inputs inputs_;             // the current step's, host only; read by the ranks between begin and end_forward
    Tensor output_;                  // cfg: rank 1's velocity of the current step
    Tensor context_source_, context_host_;
};

}  // namespace

void start_rank_group(Flux2Transformer& rank0, int size, Parallelism mode,
                      const std::function<BackendOptions(int)>& options_of, const RankLoader& load, int tp) {
    check(size >= 2, "a rank group needs at least 2 ranks, got ", size);
    // Checked before any rank loads; the sizes are the same on every rank.
    const Flux2Config& c = rank0.config();
    const int64_t heads = c.num_attention_heads;
    const char* name = mode == Parallelism::ulysses      ? "Ulysses sequence parallelism"
                       : mode == Parallelism::tensor     ? "tensor parallelism"
                       : mode == Parallelism::ulysses_tp ? "Ulysses x tensor parallelism"
                                                         : "CFG parallelism";
    const bool shards = mode == Parallelism::tensor || mode == Parallelism::ulysses_tp;
    if (mode != Parallelism::ulysses_tp) tp = mode == Parallelism::tensor ? size : 1;
    if (mode == Parallelism::cfg) {
        check(size == 2, name, " runs true CFG's conditional and unconditional forwards on one GPU each: it takes ",
              "2 GPUs, got ", size);
    } else {
        check(tp >= 2 || mode != Parallelism::ulysses_tp, name, " needs at least 2 tensor-parallel ranks per row, got ",
              tp, " (use --parallel ulysses)");
        check(size % tp == 0 && (mode != Parallelism::ulysses_tp || size / tp >= 2), name, " lays ", size,
              " GPUs out in rows of ", tp, ": ", tp, " must divide ", size, " and leave at least 2 rows (else use ",
              "--parallel tp)");
        // Every rank attends over heads / size heads: tp splits them, then Ulysses the rest.
        check(heads % size == 0, name, " splits the attention heads among the GPUs: ", size,
              " GPUs do not divide this model's ", heads, " heads (use a divisor of ", heads, ")");
    }
    check(!shards || c.mlp_hidden() % tp == 0, name, " splits the MLP among ", tp, " GPUs, which do not divide this ",
          "model's MLP width ", c.mlp_hidden());
    auto workers = std::make_shared<RankWorkers>(size, mode, tp, options_of, load);
    workers->set_rank0_backend(rank0.backend());
    RankWorkers::Comms comms = workers->start(rank0.backend());
    // Adapters rank 0 already runs with reach the new ranks, whose models were just loaded without them.
    if (!rank0.loras().empty()) workers->set_loras(rank0.loras());
    if (mode == Parallelism::cfg) {
        rank0.set_guidance_peer(workers);
        log_info(name, " on 2 ", rank0.backend().name(),
                 " ranks (conditional forward on rank 0, unconditional on "
                 "rank 1)");
        return;
    }
    workers->join(rank0, std::move(comms), workers);
    if (mode == Parallelism::ulysses_tp) {
        log_info(name, " on ", size, " ", rank0.backend().name(), " ranks: ", size / tp, " rows of ", tp,
                 " tensor-parallel ranks (", heads / size, " of ", heads, " heads each)");
    } else {
        log_info(name, " on ", size, " ", rank0.backend().name(), " ranks (", heads / size, " of ", heads,
                 " heads each)");
    }
}

}  // namespace flux2
