#pragma once
// The CUDA backend's ActivityMonitor: reads the GPU's SM clock, clock event reasons and energy counter through NVML
// (the driver's management library, opened at run time: a machine without the driver still runs the binary).
#include <memory>
#include <string>

#include "backend/device_activity.h"

namespace flux2::cuda {

// Starts watching CUDA device `device` (sampling every `period_ms`), or returns null and says why in `why_not`
// (no libnvidia-ml.so.1, a driver without a function, the device not found by its PCI bus id).
std::unique_ptr<ActivityMonitor> start_nvml_monitor(int device, std::string& why_not, int period_ms = 10);

}  // namespace flux2::cuda
