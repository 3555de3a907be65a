#pragma once
// Wall-clock timing for logs and benchmarks.
#include <chrono>

namespace flux2 {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace flux2
