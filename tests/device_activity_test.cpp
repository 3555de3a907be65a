// The device-activity summary flux2 bench prints under each GPU row: clock statistics, the shares of samples held by
// the power cap or a thermal limit, and the energy per step.
#include "backend/device_activity.h"

#include <gtest/gtest.h>

#include <string>

#include "backend/backend.h"

namespace flux2 {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(DeviceActivity, SummarizesClocksAndReasons) {
    const std::vector<ActivitySample> samples = {
        {1980.0, 0},
        {1500.0, clock_reason::power_cap},
        {1440.0, clock_reason::power_cap | 0x1},
        {1560.0, clock_reason::power_cap | clock_reason::sw_thermal},
    };
    const DeviceActivity a = summarize_activity(samples, 2.0);
    EXPECT_EQ(a.samples, 4);
    EXPECT_DOUBLE_EQ(a.seconds, 2.0);
    EXPECT_DOUBLE_EQ(a.sm_mhz_mean, (1980.0 + 1500.0 + 1440.0 + 1560.0) / 4);
    EXPECT_DOUBLE_EQ(a.sm_mhz_min, 1440.0);
    EXPECT_DOUBLE_EQ(a.sm_mhz_max, 1980.0);
    EXPECT_DOUBLE_EQ(a.power_capped_share, 0.75);
    EXPECT_DOUBLE_EQ(a.thermal_share, 0.25);
    EXPECT_LT(a.joules, 0.0);  // the monitor fills in the energy
    EXPECT_LT(a.mean_watts(), 0.0);
}

TEST(DeviceActivity, DescribesEnergyPerStepAndTheLimit) {
    DeviceActivity a = summarize_activity({{1500.0, clock_reason::power_cap}, {1480.0, clock_reason::power_cap}}, 1.25);
    a.sm_mhz_top = 1980.0;
    a.joules = 862.5;  // 690 W over 1.25 s
    a.power_limit_watts = 700.0;
    const std::string line = a.describe(5, "step");
    EXPECT_TRUE(contains(line, "SM clock 1490 MHz mean (1480-1500; top 1980)")) << line;
    EXPECT_TRUE(contains(line, "690 W of the 700 W limit")) << line;
    EXPECT_TRUE(contains(line, "172.5 J per step")) << line;
    EXPECT_TRUE(contains(line, "the power cap held the clock in 100% of 2 samples")) << line;
    EXPECT_FALSE(contains(line, "thermal")) << line;
}

TEST(DeviceActivity, SaysWhatIsMissing) {
    EXPECT_TRUE(contains(summarize_activity({}, 0.5).describe(), "no clock samples in 0.5 s"));
    // No energy counter: no watts, no joules, still the clock.
    const std::string line = summarize_activity({{1200.0, 0}}, 0.1).describe(3);
    EXPECT_TRUE(contains(line, "SM clock 1200 MHz mean (1200-1200)")) << line;
    EXPECT_FALSE(contains(line, " W")) << line;
    EXPECT_TRUE(contains(line, "in 0% of 1 samples")) << line;
    // The whole span's energy when nothing divides it.
    DeviceActivity b = summarize_activity({{1500.0, 0}}, 2.0);
    b.joules = 1000.0;
    EXPECT_TRUE(contains(b.describe(), "500 W, 1000.0 J;")) << b.describe();
}

// What a bench row prints under it: the monitor's summary, why a device was not read, or nothing without a device.
TEST(DeviceActivity, LineForABenchRow) {
    struct Fixed final : ActivityMonitor {
        DeviceActivity stop() override { return summarize_activity({{1500.0, clock_reason::power_cap}}, 1.0); }
    } monitor;
    EXPECT_EQ(activity_line(&monitor, "", 4, "step"), monitor.stop().describe(4, "step"));
    EXPECT_EQ(activity_line(nullptr, "cannot open libnvidia-ml.so.1", 4, "step"),
              "clock and power not read: cannot open libnvidia-ml.so.1");
    EXPECT_EQ(activity_line(nullptr, "", 4, "step"), "");
    // The CPU backend has no device: no monitor, and nothing said to be missing.
    BackendOptions cpu;
    cpu.device = "cpu";
    std::string why_not = "stale";
    EXPECT_EQ(make_backend(cpu)->monitor_activity(why_not), nullptr);
    EXPECT_EQ(why_not, "");
}

}  // namespace
}  // namespace flux2
