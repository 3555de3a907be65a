#include "backend/cuda/nvml_monitor.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace flux2::cuda {

namespace {

// The few NVML entry points used here, declared from the NVML API reference (the toolkit ships no nvml.h here; the
// ABI is C and stable): results are nvmlReturn_t (0 = success), devices opaque handles.
using NvmlDevice = struct NvmlDeviceOpaque*;
constexpr int kNvmlSuccess = 0;
constexpr int kNvmlClockSm = 1;  // NVML_CLOCK_SM

struct Nvml {
    int (*init)() = nullptr;
    int (*by_pci_bus_id)(const char*, NvmlDevice*) = nullptr;
    int (*clock)(NvmlDevice, int, unsigned*) = nullptr;
    int (*max_clock)(NvmlDevice, int, unsigned*) = nullptr;
    int (*reasons)(NvmlDevice, unsigned long long*) = nullptr;
    int (*energy)(NvmlDevice, unsigned long long*) = nullptr;  // millijoules since the driver loaded
    int (*power_limit)(NvmlDevice, unsigned*) = nullptr;       // milliwatts
    std::string error;                                         // why NVML cannot be used; empty when it can
};

// Opened once per process; NVML stays initialized until exit (it is reference counted and cheap to keep).
const Nvml& nvml() {
    static const Nvml n = [] {
        Nvml n;
        void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!lib) {
            const char* e = dlerror();
            n.error = str("cannot open libnvidia-ml.so.1 (", e ? e : "unknown", ")");
            return n;
        }
        auto find = [&](auto& fn, const char* name) {
            fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, name));
            if (!fn && n.error.empty()) n.error = str("libnvidia-ml.so.1 has no ", name);
        };
        find(n.init, "nvmlInit_v2");
        find(n.by_pci_bus_id, "nvmlDeviceGetHandleByPciBusId_v2");
        find(n.clock, "nvmlDeviceGetClockInfo");
        find(n.max_clock, "nvmlDeviceGetMaxClockInfo");
        find(n.energy, "nvmlDeviceGetTotalEnergyConsumption");
        find(n.power_limit, "nvmlDeviceGetEnforcedPowerLimit");
        // The newer name of the same call; drivers keep the older one as well.
        n.reasons = reinterpret_cast<decltype(n.reasons)>(dlsym(lib, "nvmlDeviceGetCurrentClocksEventReasons"));
        if (!n.reasons) find(n.reasons, "nvmlDeviceGetCurrentClocksThrottleReasons");
        if (n.error.empty() && n.init() != kNvmlSuccess) n.error = "nvmlInit_v2 failed";
        return n;
    }();
    return n;
}

class NvmlMonitor final : public ActivityMonitor {
public:
    NvmlMonitor(NvmlDevice dev, int period_ms) : dev_(dev), period_(period_ms) {
        const Nvml& n = nvml();
        unsigned v = 0;
        if (n.max_clock(dev_, kNvmlClockSm, &v) == kNvmlSuccess) top_mhz_ = v;
        if (n.power_limit(dev_, &v) == kNvmlSuccess) limit_w_ = v / 1000.0;
        unsigned long long mj = 0;
        energy_ok_ = n.energy(dev_, &mj) == kNvmlSuccess;
        energy0_ = mj;
        start_ = std::chrono::steady_clock::now();
        thread_ = std::thread([this] { run(); });
    }
    ~NvmlMonitor() override { halt(); }

    DeviceActivity stop() override {
        halt();
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        DeviceActivity a = summarize_activity(samples_, seconds);
        a.sm_mhz_top = top_mhz_;
        a.power_limit_watts = limit_w_;
        unsigned long long mj = 0;
        if (energy_ok_ && nvml().energy(dev_, &mj) == kNvmlSuccess && mj >= energy0_)
            a.joules = static_cast<double>(mj - energy0_) / 1000.0;
        return a;
    }

private:
    void run() {
        const Nvml& n = nvml();
        std::unique_lock<std::mutex> lock(mutex_);
        while (!stopping_) {
            ActivitySample s;
            unsigned mhz = 0;
            unsigned long long reasons = 0;
            if (n.clock(dev_, kNvmlClockSm, &mhz) == kNvmlSuccess) {
                s.sm_mhz = mhz;
                if (n.reasons(dev_, &reasons) == kNvmlSuccess) s.clock_reasons = reasons;
                samples_.push_back(s);
            }
            wake_.wait_for(lock, std::chrono::milliseconds(period_), [this] { return stopping_; });
        }
    }
    void halt() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

    NvmlDevice dev_;
    int period_;
    double top_mhz_ = 0.0, limit_w_ = -1.0;
    bool energy_ok_ = false;
    unsigned long long energy0_ = 0;
    std::chrono::steady_clock::time_point start_;
    std::vector<ActivitySample> samples_;  // written by the sampling thread until halt() joins it
    std::mutex mutex_;
    std::condition_variable wake_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace

std::unique_ptr<ActivityMonitor> start_nvml_monitor(int device, std::string& why_not, int period_ms) {
    const Nvml& n = nvml();
    if (!n.error.empty()) {
        why_not = n.error;
        return nullptr;
    }
    // CUDA and NVML number devices differently (CUDA_VISIBLE_DEVICES, ordering): the PCI bus id names one device.
    char bus_id[32] = {};
    if (cudaDeviceGetPCIBusId(bus_id, sizeof(bus_id), device) != cudaSuccess) {
        why_not = str("cudaDeviceGetPCIBusId failed for device ", device);
        return nullptr;
    }
    NvmlDevice dev = nullptr;
    if (n.by_pci_bus_id(bus_id, &dev) != kNvmlSuccess) {
        why_not = str("NVML does not know the device at PCI bus id ", bus_id);
        return nullptr;
    }
    return std::make_unique<NvmlMonitor>(dev, period_ms);
}

}  // namespace flux2::cuda
