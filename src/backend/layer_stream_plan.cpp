#include "backend/layer_stream_plan.h"

#include <algorithm>
#include <map>
#include <utility>

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

std::vector<bool> spread_resident_groups(std::vector<bool> resident, const std::vector<int64_t>& stream_bytes,
                                         const std::vector<int64_t>& resident_bytes) {
    check(resident.size() == stream_bytes.size() && stream_bytes.size() == resident_bytes.size(),
          "spread_resident_groups: ", resident.size(), " choices for ", stream_bytes.size(), " and ",
          resident_bytes.size(), " group sizes");
    std::map<std::pair<int64_t, int64_t>, std::vector<size_t>> classes;  // members in group order
    for (size_t g = 0; g < resident.size(); ++g)
        if (stream_bytes[g] > 0) classes[{stream_bytes[g], resident_bytes[g]}].push_back(g);
    for (const auto& [sizes, members] : classes) {
        size_t kept = 0;
        for (size_t g : members) kept += resident[g];
        const std::vector<bool> where = pick_evenly(members.size(), kept);
        for (size_t i = 0; i < members.size(); ++i) resident[members[i]] = where[i];
    }
    return resident;
}

std::vector<bool> pick_evenly(size_t n, size_t count) {
    count = std::min(count, n);
    std::vector<bool> pick(n, false);
    // Consecutive middles are n / count >= 1 apart, so the count positions are distinct.
    for (size_t i = 0; i < count; ++i) pick[(2 * i + 1) * n / (2 * count)] = true;
    return pick;
}

PageSplit split_at_pages(uintptr_t address, size_t bytes, size_t page) {
    check(page > 0, "split_at_pages: page size 0");
    const uintptr_t end = address + bytes;
    const uintptr_t first = (address + page - 1) / page * page, last = end / page * page;
    if (first >= last) return {bytes, 0, 0};
    return {first - address, last - first, end - last};
}

}  // namespace flux2
