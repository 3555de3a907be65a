#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
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
}  // namespace

int num_threads() { return g_threads; }
void set_num_threads(int n) { g_threads = std::max(1, n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    int64_t chunks = std::min<int64_t>(num_threads(), (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1));
    if (chunks <= 1) {
        fn(0, n);
        return;
    }
    std::vector<std::thread> workers;
    std::vector<std::exception_ptr> errors(chunks);
    int64_t step = (n + chunks - 1) / chunks;
    for (int64_t c = 1; c < chunks; ++c) {
        int64_t b = c * step, e = std::min(n, b + step);
        if (b >= e) break;
        workers.emplace_back([&, c, b, e] {
            try {
                fn(b, e);
            } catch (...) {
                errors[c] = std::current_exception();
            }
        });
    }
    try {
        fn(0, std::min(n, step));
    } catch (...) {
        errors[0] = std::current_exception();
    }
    for (auto& w : workers) w.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

}  // namespace flux2
