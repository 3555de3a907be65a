#include "pipeline/scheduler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/safetensors.h"

namespace flux2 {
namespace {

const std::string kGolden = std::string(FLUX2_TEST_DATA) + "/scheduler-golden.safetensors";

std::vector<float> golden_f32(const SafetensorsFile& file, const std::string& name) {
    const TensorInfo* info = file.find(name);
    EXPECT_NE(info, nullptr) << name;
    return info ? read_f32(*info) : std::vector<float>{};
}

double golden_f64(const SafetensorsFile& file, const std::string& name) {
    const TensorInfo* info = file.find(name);
    EXPECT_TRUE(info && info->dtype == DType::F64 && info->nbytes == 8) << name;
    double v = 0;
    if (info) std::memcpy(&v, info->data, 8);
    return v;
}

int64_t ulp_distance(float a, float b) {
    int32_t ia, ib;
    std::memcpy(&ia, &a, 4);
    std::memcpy(&ib, &b, 4);
    if (ia < 0) ia = INT32_MIN - ia;  // map to a monotonic integer line
    if (ib < 0) ib = INT32_MIN - ib;
    return std::llabs(int64_t{ia} - ib);
}

TEST(Scheduler, MatchesDiffusersGolden) {
    auto file = SafetensorsFile::open(kGolden);
    std::set<std::string> cases;
    for (const TensorInfo& t : file->tensors()) cases.insert(t.name.substr(0, t.name.find('.')));
    ASSERT_GE(cases.size(), 5u);
    for (const std::string& key : cases) {
        int steps = 0;
        long long tokens = 0;
        ASSERT_EQ(std::sscanf(key.c_str(), "N%d_L%lld", &steps, &tokens), 2) << key;
        const FlowMatchSchedule s = flux2_schedule(steps, tokens);
        EXPECT_NEAR(s.mu, golden_f64(*file, key + ".mu"), 1e-12) << key;
        const auto sigmas = golden_f32(*file, key + ".sigmas");
        const auto timesteps = golden_f32(*file, key + ".timesteps");
        ASSERT_EQ(s.sigmas.size(), sigmas.size()) << key;
        ASSERT_EQ(s.timesteps.size(), timesteps.size()) << key;
        EXPECT_EQ(s.num_steps(), steps);
        for (size_t i = 0; i < sigmas.size(); ++i)
            EXPECT_LE(ulp_distance(s.sigmas[i], sigmas[i]), 1)
                << key << " sigma " << i << ": " << s.sigmas[i] << " vs " << sigmas[i];
        for (size_t i = 0; i < timesteps.size(); ++i)
            EXPECT_LE(ulp_distance(s.timesteps[i], timesteps[i]), 1) << key << " timestep " << i;
    }
}

TEST(Scheduler, EmpiricalMuMatchesSpecExamples) {
    EXPECT_NEAR(compute_empirical_mu(4096, 50), 2.0233511571, 1e-9);
    EXPECT_NEAR(compute_empirical_mu(4096, 4), 2.2911799, 1e-6);
    EXPECT_NEAR(compute_empirical_mu(1024, 50), 1.7019562, 1e-6);
    // Above 4300 tokens mu no longer depends on the step count.
    EXPECT_EQ(compute_empirical_mu(6000, 4), compute_empirical_mu(6000, 50));
    EXPECT_THROW(compute_empirical_mu(0, 4), Error);
}

TEST(Scheduler, DefaultSigmasAreLinspace) {
    const auto s = flux2_default_sigmas(4);
    ASSERT_EQ(s.size(), 4u);
    EXPECT_EQ(s[0], 1.0);
    EXPECT_EQ(s[3], 0.25);
    EXPECT_DOUBLE_EQ(s[1], 0.75);
    EXPECT_EQ(flux2_default_sigmas(1), std::vector<double>{1.0});
    EXPECT_THROW(flux2_default_sigmas(0), Error);
}

TEST(Scheduler, CustomSigmasUseTheGivenMuStepCount) {
    const auto sigmas = flux2_default_sigmas(7);
    const FlowMatchSchedule a = flux2_schedule_from_sigmas(sigmas, 30, 7);
    const FlowMatchSchedule b = flux2_schedule(7, 30);
    EXPECT_EQ(a.sigmas, b.sigmas);
    EXPECT_EQ(a.timesteps, b.timesteps);
    const FlowMatchSchedule c = flux2_schedule_from_sigmas(sigmas, 30, 50);
    EXPECT_EQ(c.mu, compute_empirical_mu(30, 50));
    EXPECT_NE(c.sigmas[1], a.sigmas[1]);
    EXPECT_THROW(flux2_schedule_from_sigmas({0.5, 1.5}, 30, 2), Error);
    EXPECT_THROW(flux2_schedule_from_sigmas({}, 30, 2), Error);
}

TEST(Scheduler, ShiftWithZeroMuIsIdentityOnFloat32Sigmas) {
    const FlowMatchSchedule s = shift_sigmas({1.0, 0.5, 0.25}, 0.0);
    EXPECT_EQ(s.sigmas, (std::vector<float>{1.0f, 0.5f, 0.25f, 0.0f}));
    EXPECT_EQ(s.timesteps, (std::vector<float>{1000.0f, 500.0f, 250.0f}));
}

TEST(Scheduler, EulerStep) {
    CpuBackend be(BackendOptions{});
    const FlowMatchSchedule s = shift_sigmas({1.0, 0.5}, 0.0);
    Tensor x = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
    const Tensor v = Tensor::from_f32({2, 2}, {2, -2, 0, 1});
    euler_step(be, x, v, nullptr, 1.0f, s, 0);  // dt = -0.5
    EXPECT_EQ(x.to_vector(), (std::vector<float>{0, 3, 3, 3.5f}));
    euler_step(be, x, v, nullptr, 1.0f, s, 1);  // dt = -0.5 (0.5 -> 0)
    EXPECT_EQ(x.to_vector(), (std::vector<float>{-1, 4, 3, 3}));
    EXPECT_THROW(euler_step(be, x, v, nullptr, 1.0f, s, 2), Error);
    Tensor wrong = Tensor::zeros({4});
    EXPECT_THROW(euler_step(be, x, wrong, nullptr, 1.0f, s, 0), Error);
}

TEST(Scheduler, EulerStepWithGuidance) {
    CpuBackend be(BackendOptions{});
    const FlowMatchSchedule s = shift_sigmas({1.0, 0.5}, 0.0);
    Tensor x = Tensor::from_f32({1, 3}, {1, 2, 3});
    const Tensor v = Tensor::from_f32({1, 3}, {2, -2, 0});
    const Tensor v_neg = Tensor::from_f32({1, 3}, {1, 0, 4});
    euler_step(be, x, v, &v_neg, 4.0f, s, 0);  // v' = v_neg + 4 (v - v_neg) = {5, -8, -12}; dt = -0.5
    EXPECT_EQ(x.to_vector(), (std::vector<float>{-1.5f, 6, 9}));
    const Tensor wrong = Tensor::zeros({1, 2});
    EXPECT_THROW(euler_step(be, x, v, &wrong, 4.0f, s, 0), Error);
}

}  // namespace
}  // namespace flux2
