#include "backend/layer_stream_plan.h"

#include <algorithm>

#include "core/error.h"

namespace flux2 {

std::vector<bool> choose_resident_groups(const std::vector<int64_t>& stream_bytes,
                                         const std::vector<int64_t>& resident_bytes, int64_t budget) {
    check(stream_bytes.size() == resident_bytes.size(), "choose_resident_groups: ", stream_bytes.size(),
          " groups streaming, ", resident_bytes.size(), " resident sizes");
    std::vector<size_t> order(stream_bytes.size());
    for (size_t g = 0; g < order.size(); ++g) order[g] = g;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return stream_bytes[a] > stream_bytes[b]; });
    std::vector<bool> resident(order.size(), false);
    int64_t left = budget;
    for (size_t g : order) {
        if (stream_bytes[g] == 0 || resident_bytes[g] > left) continue;
        resident[g] = true;
        left -= resident_bytes[g];
    }
    return resident;
}

PageSplit split_at_pages(uintptr_t address, size_t bytes, size_t page) {
    check(page > 0, "split_at_pages: page size 0");
    const uintptr_t end = address + bytes;
    const uintptr_t first = (address + page - 1) / page * page, last = end / page * page;
    if (first >= last) return {bytes, 0, 0};
    return {first - address, last - first, end - last};
}

}  // namespace flux2
