#pragma once
// Shared helpers for the test suite: data paths and error metrics.
#include <cmath>
#include <string>
#include <vector>

namespace flux2::test {

inline std::string data_path(const std::string& name) { return std::string(FLUX2_TEST_DATA) + "/" + name; }

// ||a - b|| / ||b||, the metric the golden tolerances are stated in.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double num = 0, den = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace flux2::test
