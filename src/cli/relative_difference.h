#pragma once
// ||got - want|| / ||want|| (L2, in double): how the benchmarks compare an output with its reference.
#include <cmath>
#include <vector>

#include "core/error.h"

namespace flux2::cli {

inline double relative_difference(const std::vector<float>& got, const std::vector<float>& want) {
    check(got.size() == want.size(), "comparing an output of ", got.size(), " values with one of ", want.size());
    double num = 0, den = 0;
    for (size_t k = 0; k < got.size(); ++k) {
        num += (double(got[k]) - want[k]) * (double(got[k]) - want[k]);
        den += double(want[k]) * want[k];
    }
    return std::sqrt(num / den);
}

}  // namespace flux2::cli
