// The CUDA backend's device-activity monitor (NVML): while GEMMs keep the GPU busy it samples a running SM clock and
// the energy counter advances by a plausible amount.
#include <gtest/gtest.h>

#include "cuda_test_util.h"

namespace flux2 {
namespace {

class CudaActivity : public test::CudaTest {};

TEST_F(CudaActivity, ReadsClockAndEnergyWhileTheGpuWorks) {
    const Tensor x = up(randn({4096, 4096}, 0.1f));
    const LinearWeight w = test::dense_bf16_weight(randn({4096, 4096}, 0.02f));
    (void)be->linear(x, w);  // the weight's upload and the GEMM's algorithm choice, outside the span watched
    be->synchronize();
    std::string why_not;
    std::unique_ptr<ActivityMonitor> monitor = be->monitor_activity(why_not);
    ASSERT_TRUE(monitor) << "no NVML readings on a machine with a GPU: " << why_not;
    // BF16 GEMMs of 137 GFLOP each: about 0.6 s on an H200, longer on smaller cards.
    for (int i = 0; i < 3000; ++i) (void)be->linear(x, w);
    be->synchronize();
    const DeviceActivity a = monitor->stop();
    EXPECT_GT(a.samples, 5) << a.describe();
    EXPECT_GT(a.sm_mhz_min, 0.0) << a.describe();
    EXPECT_GT(a.sm_mhz_top, 0.0) << a.describe();
    EXPECT_LE(a.sm_mhz_max, a.sm_mhz_top + 1.0) << a.describe();
    ASSERT_GE(a.joules, 0.0) << "no energy counter: " << a.describe();
    EXPECT_GT(a.mean_watts(), 30.0) << a.describe();  // a busy data-centre GPU draws far more than this
    if (a.power_limit_watts > 0) EXPECT_LT(a.mean_watts(), 1.5 * a.power_limit_watts) << a.describe();
    std::printf("%s\n", a.describe().c_str());
    // Stopping again after the thread ended is harmless, and the monitor's destructor is too.
    EXPECT_GE(monitor->stop().samples, a.samples);
}

}  // namespace
}  // namespace flux2
