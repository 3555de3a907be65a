#pragma once
// What the device did while work ran: its clock, power and energy, and why it held its clock down (flux2 bench prints
// it under each timed row). A GPU under its board power limit lowers its clock: on an H200 a FLUX.2 step runs at
// about three quarters of the top clock, so step times differ between cards of one kind and from rates measured on
// short, cool kernels (docs/PERFORMANCE.md).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flux2 {

// One reading of the device, taken every few milliseconds while the work runs.
struct ActivitySample {
    double sm_mhz = 0.0;
    uint64_t clock_reasons = 0;  // the driver's bit mask of what holds the clock down (clock_reason below)
};

// Bits of the driver's clock event reasons (NVML's nvmlClocksEventReason* values) that this summary names.
namespace clock_reason {
constexpr uint64_t power_cap = 0x4;        // the software power cap (the board's power limit)
constexpr uint64_t hw_slowdown = 0x8;      // hardware slowdown (power brake or overheating)
constexpr uint64_t sw_thermal = 0x20;      // the software thermal limit
constexpr uint64_t hw_thermal = 0x40;      // the hardware thermal limit
constexpr uint64_t hw_power_brake = 0x80;  // an external power brake
}  // namespace clock_reason

struct DeviceActivity {
    int samples = 0;
    double seconds = 0.0;  // the span watched
    double sm_mhz_mean = 0.0, sm_mhz_min = 0.0, sm_mhz_max = 0.0;
    double sm_mhz_top = 0.0;          // the card's highest SM clock
    double joules = -1.0;             // energy over the span from the driver's counter; < 0: not available
    double power_limit_watts = -1.0;  // the enforced board limit; < 0: not available
    double power_capped_share = 0.0;  // of the samples, those with the clock held by the power cap
    double thermal_share = 0.0;       // ... by a thermal limit or a hardware slowdown
    double mean_watts() const { return joules >= 0.0 && seconds > 0.0 ? joules / seconds : -1.0; }
    // One line, e.g. "SM clock 1493 MHz mean (1140-1560; top 1980), 689 W of the 700 W limit, 172.4 J per step;
    // the power cap held the clock in 100% of 125 samples": the energy divided among `per` units of work named
    // `unit` (the timed steps or images), or the whole span's when per is 1 and unit empty.
    std::string describe(int per = 1, const std::string& unit = "") const;
};

// Folds samples taken over `seconds` into a DeviceActivity (the energy, limit and top clock are the monitor's).
DeviceActivity summarize_activity(const std::vector<ActivitySample>& samples, double seconds);

// Watches the device from its creation to stop() (a sampling thread); stop() returns what it saw.
class ActivityMonitor {
public:
    virtual ~ActivityMonitor() = default;
    virtual DeviceActivity stop() = 0;
};

// The device line of a bench row (flux2 bench's steps, --pipeline's images): what `monitor` saw, its energy divided
// among `per` units named `unit`; without a monitor, why the readings are missing (`why_not`, as
// Backend::monitor_activity gave it), or nothing where there is no device to read (why_not empty).
std::string activity_line(ActivityMonitor* monitor, const std::string& why_not, int per, const std::string& unit);

}  // namespace flux2
