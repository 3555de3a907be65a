#pragma once
// Jobs waiting for the device, run one at a time in arrival order by one worker thread. The queue owns ordering,
// the bound (a full queue refuses with 429), cancellation and the job states
// (queued -> running -> completed | failed | cancelled). The worker's `run` function does the work; the queue knows
// nothing of models or HTTP.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/flux2_engine.h"
#include "server/api_error.h"
#include "server/image_request.h"

namespace flux2::server {

enum class JobState { queued, running, completed, failed, cancelled };
const char* job_state_name(JobState s);

// Thrown from inside a job's work when its cancel flag is seen (between denoising steps).
struct JobCancelled {};

class Job {
public:
    using Clock = std::chrono::steady_clock;
    Job(std::string id, ImageRequest request) : id(std::move(id)), request(std::move(request)) {}

    const std::string id;
    const ImageRequest request;
    const Clock::time_point created = Clock::now();

    // A progress record per finished denoising step, for streaming clients.
    struct Progress {
        int step, total;
        double elapsed_s;
    };

    JobState state() const;
    // Blocks until the job ends or `timeout` passes; true when it ended.
    bool wait_done(std::chrono::milliseconds timeout) const;
    // Progress records from index `from` on; blocks up to `timeout` for a new one unless the job ended.
    std::vector<Progress> progress_since(size_t from, std::chrono::milliseconds timeout) const;

    // Asks the job to stop: a queued job never starts, a running one stops at its next step.
    void request_cancel() { cancel_requested_.store(true); }
    bool cancel_requested() const { return cancel_requested_.load(); }

    // Valid once state() is completed / failed.
    const EngineResult& result() const { return *result_; }
    const ApiError& error() const { return *error_; }
    double queue_seconds() const;  // created -> started (or -> ended, if it never started)

    // For the worker.
    void mark_running();
    void add_progress(const Progress& p);
    void finish(EngineResult result);
    void fail(ApiError error);
    void mark_cancelled();

private:
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    JobState state_ = JobState::queued;
    std::atomic<bool> cancel_requested_{false};
    Clock::time_point started_{}, ended_{};
    std::vector<Progress> progress_;
    std::optional<EngineResult> result_;
    std::optional<ApiError> error_;
};

class JobQueue {
public:
    // `run` executes one job on the worker thread and calls job.finish / job.fail; it may throw JobCancelled.
    using Runner = std::function<void(Job&)>;
    JobQueue(size_t max_waiting, Runner run);
    ~JobQueue();  // closes and joins the worker; waiting jobs are cancelled

    // Adds a job; throws ApiError 429 when max_waiting jobs already wait, 503 when the queue is closed.
    std::shared_ptr<Job> submit(std::string id, ImageRequest request);
    // A queued job is removed at once; a running one is flagged and stops at its next step.
    void cancel(const std::shared_ptr<Job>& job);

    size_t waiting() const;  // jobs queued, not yet running
    bool busy() const;       // a job is running

    // Stops accepting; jobs still waiting are cancelled. Then waits up to `timeout` for the running job; false when
    // it was still running at the deadline (it has then been asked to cancel).
    bool close_and_drain(std::chrono::milliseconds timeout);

private:
    void worker_loop();

    const size_t max_waiting_;
    Runner run_;
    mutable std::mutex mutex_;
    std::condition_variable wake_, idle_;
    std::deque<std::shared_ptr<Job>> waiting_;
    std::shared_ptr<Job> running_;
    bool closed_ = false, stop_ = false;
    std::thread worker_;
};

}  // namespace flux2::server
