#include "backend/device_activity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace flux2 {

DeviceActivity summarize_activity(const std::vector<ActivitySample>& samples, double seconds) {
    DeviceActivity a;
    a.samples = static_cast<int>(samples.size());
    a.seconds = seconds;
    if (samples.empty()) return a;
    a.sm_mhz_min = samples.front().sm_mhz;
    a.sm_mhz_max = samples.front().sm_mhz;
    double sum = 0.0;
    int capped = 0, thermal = 0;
    constexpr uint64_t thermal_bits =
        clock_reason::hw_slowdown | clock_reason::sw_thermal | clock_reason::hw_thermal | clock_reason::hw_power_brake;
    for (const ActivitySample& s : samples) {
        sum += s.sm_mhz;
        a.sm_mhz_min = std::min(a.sm_mhz_min, s.sm_mhz);
        a.sm_mhz_max = std::max(a.sm_mhz_max, s.sm_mhz);
        capped += (s.clock_reasons & clock_reason::power_cap) != 0;
        thermal += (s.clock_reasons & thermal_bits) != 0;
    }
    a.sm_mhz_mean = sum / static_cast<double>(samples.size());
    a.power_capped_share = capped / static_cast<double>(samples.size());
    a.thermal_share = thermal / static_cast<double>(samples.size());
    return a;
}

std::string DeviceActivity::describe(int per, const std::string& unit) const {
    if (samples == 0) return str("no clock samples in ", seconds, " s");
    std::string out = str("SM clock ", std::lround(sm_mhz_mean), " MHz mean (", std::lround(sm_mhz_min), "-",
                          std::lround(sm_mhz_max));
    if (sm_mhz_top > 0.0) out += str("; top ", std::lround(sm_mhz_top));
    out += ")";
    if (mean_watts() >= 0.0) {
        out += str(", ", std::lround(mean_watts()), " W");
        if (power_limit_watts > 0.0) out += str(" of the ", std::lround(power_limit_watts), " W limit");
        char energy[32];
        std::snprintf(energy, sizeof(energy), "%.1f", joules / std::max(1, per));
        out += str(", ", energy, " J", unit.empty() ? "" : " per " + unit);
    }
    out += str("; the power cap held the clock in ", std::lround(100.0 * power_capped_share), "% of ", samples,
               " samples");
    if (thermal_share > 0.0) out += str(", a thermal limit or slowdown in ", std::lround(100.0 * thermal_share), "%");
    return out;
}

std::string activity_line(ActivityMonitor* monitor, const std::string& why_not, int per, const std::string& unit) {
    if (monitor) return monitor->stop().describe(per, unit);
    return why_not.empty() ? "" : "clock and power not read: " + why_not;
}

}  // namespace flux2
