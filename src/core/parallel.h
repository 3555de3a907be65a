#pragma once
// Fork-join parallelism for the CPU backend over a persistent pool of worker threads (parallel.cpp says why).
#include <cstdint>
#include <functional>

namespace flux2 {

// Number of worker threads: $FLUX2_THREADS if set, else std::thread::hardware_concurrency().
int num_threads();
void set_num_threads(int n);

// Splits [0, n) into contiguous chunks of at least `grain` items and runs fn(begin, end) on each, in parallel.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace flux2
