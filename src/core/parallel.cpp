#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace flux2 {

namespace {
int initial_threads() {
    if (const char* env = std::getenv("FLUX2_THREADS")) {
        int n = std::atoi(env);
        if (n > 0) return n;
    }
    return std::max(1u, std::thread::hardware_concurrency());
}
std::atomic<int> g_threads{initial_threads()};

// Set on the pool's workers: a parallel_for inside a chunk runs inline rather than waiting on its own pool.
thread_local bool t_in_pool_worker = false;

// Persistent workers for parallel_for. A tiny transformer step is hundreds of parallel_for calls of a few
// microseconds each, and starting and joining threads for every one of them cost as much as the work. One job at
// a time: a caller that finds the pool busy (another thread's parallel_for, e.g. the CPU ranks of --gpus) starts
// threads of its own for that call, as before the pool existed.
class WorkerPool {
public:
    explicit WorkerPool(int workers) {
        for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
    }
    ~WorkerPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            quit_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }
    int workers() const { return static_cast<int>(threads_.size()); }
    std::mutex& busy() { return busy_; }

    // Runs chunks [0, chunks) of a job: the caller takes chunks too and returns when every chunk is done.
    void run(int64_t chunks, const std::function<void(int64_t)>& chunk) {
        auto job = std::make_shared<Job>(chunk, chunks);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = job;
            ++generation_;
        }
        wake_.notify_all();
        take_chunks(*job);
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return job->remaining == 0; });
        job_.reset();
    }

private:
    // One parallel_for call. A worker keeps the job it woke for, so one that is still looking for chunks when the
    // next job starts finds this job's counter exhausted instead of taking the next job's chunks.
    struct Job {
        Job(const std::function<void(int64_t)>& f, int64_t n) : chunk(f), chunks(n), remaining(n) {}
        const std::function<void(int64_t)>& chunk;
        const int64_t chunks;
        std::atomic<int64_t> next{0};
        int64_t remaining;  // guarded by the pool's mutex
    };

    void take_chunks(Job& job) {
        for (int64_t c = job.next.fetch_add(1); c < job.chunks; c = job.next.fetch_add(1)) {
            job.chunk(c);
            std::lock_guard<std::mutex> lock(mutex_);
            if (--job.remaining == 0) done_.notify_all();
        }
    }

    void work() {
        t_in_pool_worker = true;
        uint64_t seen = 0;
        for (;;) {
            std::shared_ptr<Job> job;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return quit_ || (job_ && generation_ != seen); });
                if (quit_) return;
                job = job_;
                seen = generation_;
            }
            take_chunks(*job);
        }
    }

    std::vector<std::thread> threads_;
    std::mutex busy_;  // held by the caller of run() for the whole job
    std::mutex mutex_;
    std::condition_variable wake_, done_;
    std::shared_ptr<Job> job_;
    uint64_t generation_ = 0;  // of job_: a worker joins each job once
    bool quit_ = false;
};

std::mutex g_pool_mutex;  // guards g_pool's replacement when the thread count changes
std::shared_ptr<WorkerPool> g_pool;

std::shared_ptr<WorkerPool> pool_for(int threads) {
    std::lock_guard<std::mutex> lock(g_pool_mutex);
    if (!g_pool || g_pool->workers() != threads - 1) g_pool = std::make_shared<WorkerPool>(threads - 1);
    return g_pool;
}

// The pre-pool way, for a caller that finds the pool busy: one thread per chunk but the first.
void run_on_new_threads(int64_t chunks, const std::function<void(int64_t)>& chunk) {
    std::vector<std::thread> workers;
    for (int64_t c = 1; c < chunks; ++c) workers.emplace_back([&, c] { chunk(c); });
    chunk(0);
    for (auto& w : workers) w.join();
}
}  // namespace

int num_threads() { return g_threads; }
void set_num_threads(int n) { g_threads = std::max(1, n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    const int64_t g = std::max<int64_t>(grain, 1);
    const int threads = num_threads();
    const int64_t chunks = std::min<int64_t>(threads, (n + g - 1) / g);
    if (chunks <= 1 || t_in_pool_worker) {
        fn(0, n);
        return;
    }
    const int64_t step = (n + chunks - 1) / chunks;
    std::vector<std::exception_ptr> errors(static_cast<size_t>(chunks));
    const std::function<void(int64_t)> chunk = [&](int64_t c) {
        const int64_t b = c * step, e = std::min(n, b + step);
        if (b >= e) return;
        try {
            fn(b, e);
        } catch (...) {
            errors[static_cast<size_t>(c)] = std::current_exception();
        }
    };
    std::shared_ptr<WorkerPool> pool = pool_for(threads);
    std::unique_lock<std::mutex> busy(pool->busy(), std::try_to_lock);
    if (busy.owns_lock()) {
        pool->run(chunks, chunk);
    } else {
        run_on_new_threads(chunks, chunk);
    }
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace flux2
