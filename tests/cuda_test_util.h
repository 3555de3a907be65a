#pragma once
// Fixture for the CUDA op tests: a CUDA backend (skipping the test on builds or machines without a GPU), random
// inputs already rounded to BF16 (what the device holds, so the fp64 CPU references see the same numbers), and
// upload/download helpers. The references are written out in each test in plain loops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "quant/float_codecs.h"
#include "test_util.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#endif

namespace flux2::test {

inline float round_bf16(float v) { return bf16_to_f32(f32_to_bf16(v)); }

// Options for a backend on the first GPU on a linear path ("fp8", "bf16", "fp4"), NVFP4 weights kept as `residency`.
inline BackendOptions cuda_options(const std::string& precision, const std::string& residency = "") {
    BackendOptions options;
    options.device = "cuda";
    options.precision = precision;
    options.residency = residency;
    return options;
}

class CudaTest : public ::testing::Test {
protected:
    void SetUp() override {
#ifdef FLUX2_HAVE_CUDA
        if (!cuda_device_available())
            GTEST_SKIP() << "no CUDA GPU visible: CUDA op tests run on the GPU machine (scripts/device-test.sh)";
        BackendOptions options;
        options.device = "cuda";
        options.precision = precision();
        be = make_cuda_backend(options);
        cuda = static_cast<CudaBackend*>(be.get());
        cuda->set_poison_new_tensors(true);
#else
        GTEST_SKIP() << "this build has no CUDA backend (nvcc not found or FLUX2_CUDA=OFF)";
#endif
    }

    virtual std::string precision() const { return "bf16"; }

    // Normal(mean, stddev) values rounded to BF16, as a host F32 tensor.
    Tensor randn(const Shape& shape, float stddev = 1.0f, float mean = 0.0f) {
        std::normal_distribution<float> dist(mean, stddev);
        Tensor t = Tensor::zeros(shape);
        for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = round_bf16(dist(rng));
        return t;
    }

    // A LoRA branch of BF16-rounded random factors large enough to change a layer's output by tens of percent, so
    // that a missing or misplaced branch shows.
    std::shared_ptr<const LoraBranch> random_lora(int64_t rank, int64_t in, int64_t out) {
        auto l = std::make_shared<LoraBranch>();
        l->rank = rank;
        l->in_features = in;
        l->out_features = out;
        l->a = randn({rank, in}, 1.0f / std::sqrt(float(in))).to_vector();
        l->b = randn({out, rank}, 0.5f / std::sqrt(float(rank))).to_vector();
        l->label = "test";
        return l;
    }

    Tensor up(const Tensor& host) { return be->upload(host); }
    std::vector<float> down(const Tensor& device) { return be->download(device).to_vector(); }

    std::unique_ptr<Backend> be;
#ifdef FLUX2_HAVE_CUDA
    CudaBackend* cuda = nullptr;
#endif
    std::mt19937 rng{20261128};
};

// Every element finite (catches NaN from unwritten or garbage memory).
// A dense BF16 linear holding w [out, in] rounded to BF16.
inline LinearWeight dense_bf16_weight(const Tensor& w, const std::string& name = "test.dense") {
    LinearWeight lw;
    lw.name = name;
    lw.out_features = w.dim(0);
    lw.in_features = w.dim(1);
    lw.format = WeightFormat::dense;
    lw.dense.dtype = DType::BF16;
    lw.dense.bytes.resize(w.numel() * 2);
    for (int64_t i = 0; i < w.numel(); ++i) {
        const uint16_t bits = f32_to_bf16(w.f32()[i]);
        std::memcpy(lw.dense.bytes.data() + 2 * i, &bits, 2);
    }
    return lw;
}

inline bool all_finite(const std::vector<float>& v) {
    for (float x : v)
        if (!std::isfinite(x)) return false;
    return true;
}

inline std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace flux2::test
