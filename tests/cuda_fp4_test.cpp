// The fp4 path on the GPU: the NVFP4 activation quantizer against its CPU reference byte for byte (any GPU: the
// kernel is plain CUDA), and the whole fp4 linear (Blackwell only: skipped elsewhere) against the exact product
// of the fake-quantized activations and the dequantized weight.
#include <cstring>

#include "cuda_test_util.h"
#include "quant/nvfp4.h"
#include "quant/nvfp4_gemm_layout.h"
#include "quant/nvfp4_quantizer.h"

namespace flux2::test {
namespace {

#ifdef FLUX2_HAVE_CUDA
std::vector<uint8_t> download_bytes(CudaBackend& be, const Tensor& t) {
    std::vector<uint8_t> host(t.nbytes());
    be.synchronize();
    EXPECT_EQ(cudaMemcpy(host.data(), t.raw(), host.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
}

bool is_blackwell() {
    cudaDeviceProp prop{};
    return cudaGetDeviceProperties(&prop, 0) == cudaSuccess && (prop.major == 10 || prop.major == 12);
}

class CudaFp4Quantize : public CudaTest {
protected:
    void expect_quantizer_matches(const Tensor& x, std::optional<float> input_scale);
};

void CudaFp4Quantize::expect_quantizer_matches(const Tensor& x, std::optional<float> input_scale) {
    CudaBackend& be = *cuda;
    const int64_t cols = x.dim(-1), rows = x.numel() / cols;
    SCOPED_TRACE(testing::Message() << "[" << rows << ", " << cols << "] " << (input_scale ? "static" : "dynamic"));
    const float alpha_factor = 0.37f;
    const Fp4Activations a = be.quantize_fp4(up(x), input_scale, alpha_factor);
    const float tensor_scale = input_scale ? *input_scale : dynamic_nvfp4_scale(x.f32(), x.numel());
    const Nvfp4GemmActivations want = quantize_nvfp4_gemm_activations(x.f32(), rows, cols, tensor_scale);
    EXPECT_EQ(download_bytes(be, a.codes), want.codes);
    EXPECT_EQ(download_bytes(be, a.scales), want.scales);
    const std::vector<uint8_t> raw = download_bytes(be, a.scalars);
    float scalars[4];
    std::memcpy(scalars, raw.data(), sizeof(scalars));
    EXPECT_EQ(scalars[0], tensor_scale * alpha_factor);
    EXPECT_EQ(scalars[1], 0.0f);
    EXPECT_EQ(scalars[2], tensor_scale);
}

TEST_F(CudaFp4Quantize, MatchesTheCpuReference) {
    expect_quantizer_matches(randn({3, 7, 64}), 0.01f);            // rows padded to 128
    expect_quantizer_matches(randn({130, 48}, 2.0f), std::nullopt);  // K/16 = 3, dynamic
    expect_quantizer_matches(randn({256, 512}, 0.5f), std::nullopt);
    expect_quantizer_matches(randn({5, 32}, 4.0f), 1e-5f);           // saturated block scales
}

class CudaFp4Linear : public CudaTest {
protected:
    std::string precision() const override { return is_blackwell() ? "fp4" : "bf16"; }
};

TEST_F(CudaFp4Linear, MatchesFakeQuantizedProduct) {
    if (!is_blackwell()) GTEST_SKIP() << "the fp4 GEMM needs a Blackwell GPU (compute capability 10.x or 12.x)";
    for (bool static_scale : {true, false}) {
        const int64_t m = 77, n = 200, k = 320;
        const Tensor x = randn({m, k});
        const Tensor wf = randn({n, k}, 0.05f);
        LinearWeight w;
        w.name = "test.fp4";
        w.out_features = n;
        w.in_features = k;
        w.format = WeightFormat::nvfp4;
        w.nvfp4 = quantize_nvfp4_weight(wf.f32(), n, k);
        if (static_scale) w.nvfp4.input_scale = 4.0f / (448.0f * 6.0f);
        const std::vector<float> y = down(cuda->linear(up(x), w));
        EXPECT_NE(be->path_summary().find(kFp4PathLabel), std::string::npos) << be->path_summary();

        std::vector<float> xq(x.f32(), x.f32() + x.numel());
        const float ts = static_scale ? *w.nvfp4.input_scale : dynamic_nvfp4_scale(xq.data(), m * k);
        fake_quantize_nvfp4(xq.data(), m, k, ts);
        const std::vector<float> wd = dequantize(w);
        double err = 0, ref = 0;
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) {
                double acc = 0;
                for (int64_t l = 0; l < k; ++l) acc += double(xq[i * k + l]) * wd[j * k + l];
                err += (y[i * n + j] - acc) * (y[i * n + j] - acc);
                ref += acc * acc;
            }
        // Same operands exactly; only fp32 accumulation and the BF16 output differ.
        EXPECT_LT(std::sqrt(err / ref), 1e-2) << (static_scale ? "static" : "dynamic") << " input scale";
    }
}
#endif

}  // namespace
}  // namespace flux2::test
