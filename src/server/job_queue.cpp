#include "server/job_queue.h"

#include <algorithm>

#include "core/log.h"

namespace flux2::server {

const char* job_state_name(JobState s) {
    switch (s) {
        case JobState::queued:
            return "queued";
        case JobState::running:
            return "running";
        case JobState::completed:
            return "completed";
        case JobState::failed:
            return "failed";
        case JobState::cancelled:
            return "cancelled";
    }
    return "?";
}

namespace {
bool ended(JobState s) { return s == JobState::completed || s == JobState::failed || s == JobState::cancelled; }
}  // namespace

JobState Job::state() const {
    std::lock_guard lock(mutex_);
    return state_;
}

bool Job::wait_done(std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return ended(state_); });
}

std::vector<Job::Progress> Job::progress_since(size_t from, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return progress_.size() > from || ended(state_); });
    if (progress_.size() <= from) return {};
    return {progress_.begin() + static_cast<std::ptrdiff_t>(from), progress_.end()};
}

double Job::queue_seconds() const {
    std::lock_guard lock(mutex_);
    const Clock::time_point until = started_ != Clock::time_point{} ? started_ : ended_;
    return until == Clock::time_point{} ? std::chrono::duration<double>(Clock::now() - created).count()
                                        : std::chrono::duration<double>(until - created).count();
}

void Job::mark_running() {
    std::lock_guard lock(mutex_);
    state_ = JobState::running;
    started_ = Clock::now();
    changed_.notify_all();
}

void Job::add_progress(const Progress& p) {
    std::lock_guard lock(mutex_);
    progress_.push_back(p);
    changed_.notify_all();
}

void Job::finish(EngineResult result) {
    std::lock_guard lock(mutex_);
    result_ = std::move(result);
    state_ = JobState::completed;
    ended_ = Clock::now();
    changed_.notify_all();
}

void Job::fail(ApiError error) {
    std::lock_guard lock(mutex_);
    error_ = std::move(error);
    state_ = JobState::failed;
    ended_ = Clock::now();
    changed_.notify_all();
}

void Job::mark_cancelled() {
    std::lock_guard lock(mutex_);
    if (ended(state_)) return;
    state_ = JobState::cancelled;
    ended_ = Clock::now();
    changed_.notify_all();
}

JobQueue::JobQueue(size_t max_waiting, Runner run)
    : max_waiting_(max_waiting), run_(std::move(run)), worker_([this] { worker_loop(); }) {}

JobQueue::~JobQueue() {
    close_and_drain(std::chrono::milliseconds(0));
    {
        std::lock_guard lock(mutex_);
        stop_ = true;
    }
    wake_.notify_all();
    worker_.join();
}

std::shared_ptr<Job> JobQueue::submit(std::string id, ImageRequest request) {
    std::lock_guard lock(mutex_);
    if (closed_) throw unavailable("shutting_down");
    if (waiting_.size() >= max_waiting_) {
        ApiError e(
            429, "rate_limit_error", "queue_full", "",
            str("the queue is full (", waiting_.size(), " jobs waiting, --max-queue ", max_waiting_, "); retry later"));
        e.retry_after_seconds = 1 + static_cast<int>(waiting_.size());
        throw e;
    }
    auto job = std::make_shared<Job>(std::move(id), std::move(request));
    waiting_.push_back(job);
    wake_.notify_all();
    return job;
}

void JobQueue::cancel(const std::shared_ptr<Job>& job) {
    job->request_cancel();
    std::lock_guard lock(mutex_);
    auto it = std::find(waiting_.begin(), waiting_.end(), job);
    if (it != waiting_.end()) {
        waiting_.erase(it);
        job->mark_cancelled();
    }
}

size_t JobQueue::waiting() const {
    std::lock_guard lock(mutex_);
    return waiting_.size();
}

bool JobQueue::busy() const {
    std::lock_guard lock(mutex_);
    return running_ != nullptr;
}

bool JobQueue::close_and_drain(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    closed_ = true;
    for (auto& job : waiting_) {
        job->request_cancel();
        job->mark_cancelled();
    }
    waiting_.clear();
    if (idle_.wait_for(lock, timeout, [&] { return running_ == nullptr; })) return true;
    running_->request_cancel();
    return false;
}

void JobQueue::worker_loop() {
    for (;;) {
        std::shared_ptr<Job> job;
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [&] { return stop_ || !waiting_.empty(); });
            if (stop_ && waiting_.empty()) return;
            job = waiting_.front();
            waiting_.pop_front();
            running_ = job;
        }
        if (!job->cancel_requested()) {
            job->mark_running();
            try {
                run_(*job);
            } catch (const JobCancelled&) {
                job->mark_cancelled();
            } catch (const ApiError& e) {
                job->fail(e);
            } catch (const std::exception& e) {
                log_error("job ", job->id, " failed: ", e.what());
                job->fail(ApiError(500, "server_error", "generation_failed", "", str("generation failed: ", e.what())));
            }
        }
        job->mark_cancelled();  // no-op unless the runner left it unfinished or it was cancelled before starting
        {
            std::lock_guard lock(mutex_);
            running_.reset();
        }
        idle_.notify_all();
    }
}

}  // namespace flux2::server
