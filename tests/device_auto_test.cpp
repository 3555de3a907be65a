// --device auto: the backend layer picks a GPU this build can run on, else the CPU with a one-line note; every
// command with --device defaults to it.
#include <gtest/gtest.h>

#include "backend/backend.h"
#include "cli_runner.h"
#include "test_util.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

namespace flux2 {
namespace {

using test::contains;

bool gpu_usable() {
#ifdef FLUX2_HAVE_CUDA
    return probe_cuda_device(0).usable;
#else
    return false;
#endif
}

BackendOptions with_device(const std::string& device) {
    BackendOptions options;
    options.device = device;
    return options;
}

TEST(DeviceAuto, ResolvesToAUsableGpuElseTheCpu) {
    const std::string expected = gpu_usable() ? "cuda" : "cpu";
    EXPECT_EQ(resolve_device(with_device("auto")), expected);
    EXPECT_EQ(make_backend(with_device("auto"))->name(), expected);
    // Explicit devices are not second-guessed.
    EXPECT_EQ(resolve_device(with_device("cpu")), "cpu");
    EXPECT_EQ(resolve_device(with_device("cuda:1")), "cuda:1");
    test::expect_error([] { make_backend(with_device("tpu")); }, {"unknown device 'tpu'", "auto"});
}

TEST(DeviceAuto, CpuNumericsMeanTheCpu) {
    BackendOptions w4a4 = with_device("auto");
    w4a4.nvfp4_activations = Nvfp4Activations::w4a4;
    EXPECT_EQ(resolve_device(w4a4), "cpu");
    BackendOptions f32 = with_device("auto");
    f32.precision = "f32";
    EXPECT_EQ(resolve_device(f32), "cpu");
}

TEST(DeviceAuto, GpuOnlyOptionOnTheCpuFallbackSaysWhy) {
    if (gpu_usable()) GTEST_SKIP() << "a usable GPU is present, so auto does not fall back";
    BackendOptions options = with_device("auto");
    options.precision = "fp8";
    test::expect_error([&] { make_backend(options); }, {"precision 'fp8' is a GPU path", "--device auto"});
    options.precision.clear();
    options.attention = "fp8";
    test::expect_error([&] { make_backend(options); }, {"attention 'fp8' is a GPU path", "--device auto"});
    options.attention.clear();
    options.fp8_accumulation = "precise";
    test::expect_error([&] { make_backend(options); }, {"fp8 accumulation 'precise' applies to the CUDA fp8 path"});
}

class DeviceAutoCli : public test::CliForward {};

TEST_F(DeviceAutoCli, ForwardDefaultsToAutoAndSaysWhatItPicked) {
    test::RunResult r = flux2({"forward", "--model", test::data_path("tiny-klein-bf16.safetensors"), "--inputs",
                               write_inputs(), "--output", file("out.safetensors")});
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.err, gpu_usable() ? "device auto: cuda (" : "device auto: no usable CUDA GPU (") ||
                contains(r.err, "device auto: this flux2 build has no CUDA backend"))
        << r.err;
}

TEST_F(DeviceAutoCli, EveryDeviceFlagDefaultsToAuto) {
    for (const char* command : {"generate", "forward", "encode-prompt", "bench"}) {
        test::RunResult r = flux2({command, "--help"});
        ASSERT_EQ(r.exit_code, 0) << r;
        const size_t at = r.out.find("--device TEXT");
        ASSERT_NE(at, std::string::npos) << command << ":\n" << r.out;
        const std::string line = r.out.substr(at, r.out.find('\n', at) - at);
        EXPECT_TRUE(contains(line, "=auto ")) << command << ": " << line;
    }
}

}  // namespace
}  // namespace flux2
