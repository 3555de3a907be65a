// The fp8 path's two accumulation modes (BackendOptions::fp8_accumulation) at FLUX.2-dev's GEMM widths, against
// the fp64 product of exactly the E4M3 operands the GEMM multiplies: "precise" (partial sums promoted to fp32
// registers at intervals) is within the BF16 output's rounding; "fast" (the tensor cores' own accumulator
// throughout) adds that accumulator's error, which is bounded here and printed. Both are far below the E4M3
// quantization of the operands themselves (a few percent, cuda_linear_test.cpp).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "cuda_test_util.h"
#include "quant/linear_weight.h"

namespace flux2::test {
namespace {

// Measured on an H200 (docs/CUDA.md "FP8 accumulation"): precise 2.5e-3 (k 6144) and 2.2e-3 (k 24576), about the
// BF16 output's rounding; fast 3.1e-3 and 4.6e-3.
constexpr double kPreciseTol = 4e-3;
constexpr double kFastTol = 1e-2;

// Normal(0, stddev) values as an FP8 weight with one per-tensor scale: its codes are the GEMM's operand as is.
LinearWeight fp8_weight(std::mt19937& rng, int64_t n, int64_t k, float stddev) {
    std::normal_distribution<float> dist(0.0f, stddev);
    LinearWeight lw;
    lw.name = "test.fp8";
    lw.out_features = n;
    lw.in_features = k;
    lw.format = WeightFormat::fp8;
    std::vector<float> w(static_cast<size_t>(n * k));
    float amax = 0;
    for (float& v : w) amax = std::max(amax, std::fabs(v = dist(rng)));
    lw.fp8.scale = amax / 448.0f;
    for (float v : w) lw.fp8.codes.push_back(f32_to_e4m3(v / lw.fp8.scale));
    return lw;
}

// What the backend's per-token quantizer makes of x's rows: E4M3 codes times amax / 448, as floats.
std::vector<double> fp8_rows(const std::vector<float>& x, int64_t rows, int64_t cols) {
    std::vector<double> out(x.size());
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = x.data() + r * cols;
        float amax = 0;
        for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(row[i]));
        const float scale = amax > 0 ? amax / 448.0f : 1.0f;
        for (int64_t i = 0; i < cols; ++i) out[r * cols + i] = double(e4m3_to_f32(f32_to_e4m3(row[i] / scale))) * scale;
    }
    return out;
}

TEST(CudaFp8Accumulation, BothModesStayNearTheExactProductOfTheE4m3Operands) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible";
    std::mt19937 rng(20261203);
    const int64_t m = 64, n = 256;
    for (const int64_t k : {int64_t{6144}, int64_t{24576}}) {  // dev's hidden width and single-block MLP input
        std::normal_distribution<float> dist(0.0f, 1.0f);
        Tensor x = Tensor::zeros({m, k});
        for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = round_bf16(dist(rng));
        const LinearWeight w = fp8_weight(rng, n, k, 1.0f / std::sqrt(float(k)));
        const std::vector<double> xq = fp8_rows(x.to_vector(), m, k);
        std::vector<double> wq(static_cast<size_t>(n * k));
        for (size_t i = 0; i < wq.size(); ++i) wq[i] = double(e4m3_to_f32(w.fp8.codes[i])) * w.fp8.scale;
        std::vector<float> want(static_cast<size_t>(m * n));  // summed in fp64
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
                double acc = 0;
                for (int64_t l = 0; l < k; ++l) acc += xq[i * k + l] * wq[j * k + l];
                want[i * n + j] = static_cast<float>(acc);
            }
        for (const std::string mode : {"precise", "fast"}) {
            BackendOptions o = cuda_options("fp8");
            o.fp8_accumulation = mode;
            std::unique_ptr<Backend> be = make_cuda_backend(o);
            // The second backend may live where the first did: it must prepare w again (Backend::instance_id), or
            // it would run the first one's GEMM plan and path.
            const std::vector<float> got = be->download(be->linear(be->upload(x), w)).to_vector();
            const double err = rel_error(got, want);
            std::printf("fp8 GEMM m%ld n%ld k%ld, %s accumulation: rel L2 error vs the exact product %.2e\n", long(m),
                        long(n), long(k), mode.c_str(), err);
            EXPECT_LE(err, mode == "fast" ? kFastTol : kPreciseTol) << mode << " k " << k;
            const bool labelled = be->path_summary().find("fast accumulation") != std::string::npos;
            EXPECT_EQ(labelled, mode == "fast") << be->path_summary();
        }
    }
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

}  // namespace
}  // namespace flux2::test
