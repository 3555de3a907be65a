// The fp4-resident fp8 path (BackendOptions::residency = "fp4") against the default fp8 residency: the per-call
// NVFP4 -> E4M3 conversion must give the very same GEMM operands, so the outputs are bit-identical, also when
// layers of different sizes take turns in the shared conversion buffer.
#include "cuda_test_util.h"
#include "quant/nvfp4_quantizer.h"

namespace flux2::test {
namespace {

class CudaResidencyTest : public CudaTest {
protected:
    std::string precision() const override { return "fp8"; }

    LinearWeight nvfp4(int64_t out, int64_t in, const std::string& name) {
        Tensor w = randn({out, in}, 0.05f);
        LinearWeight lw;
        lw.name = name;
        lw.out_features = out;
        lw.in_features = in;
        lw.format = WeightFormat::nvfp4;
        lw.nvfp4 = quantize_nvfp4_weight(w.f32(), out, in);
        return lw;
    }
};

TEST_F(CudaResidencyTest, Fp4ResidentGivesTheSameOutputsAsFp8Resident) {
#ifdef FLUX2_HAVE_CUDA
    BackendOptions options;
    options.device = "cuda";
    options.precision = "fp8";
    options.residency = "fp4";
    auto resident = make_backend(options);
    ASSERT_TRUE(static_cast<CudaBackend*>(resident.get())->fp4_resident());
    LinearWeight big = nvfp4(384, 256, "big"), small = nvfp4(96, 384, "small");
    LinearWeight big4 = big, small4 = small;  // each backend prepares its own copy
    Tensor x = randn({3, 37, 256});
    // big then small then big again: the shared buffer is overwritten between the two uses of `big`.
    auto run = [&](Backend& b, const LinearWeight& w1, const LinearWeight& w2) {
        Tensor h = b.linear(b.upload(x), w1);
        Tensor y = b.linear(h, w2);
        Tensor z = b.linear(b.upload(x), w1);
        std::vector<float> out = b.download(y).to_vector(), zz = b.download(z).to_vector();
        out.insert(out.end(), zz.begin(), zz.end());
        return out;
    };
    std::vector<float> ref = run(*be, big, small), got = run(*resident, big4, small4);
    ASSERT_TRUE(all_finite(got));
    EXPECT_EQ(got, ref);
    EXPECT_NE(resident->path_summary().find("nvfp4(resident)"), std::string::npos) << resident->path_summary();
#endif
}

TEST_F(CudaResidencyTest, Fp4ResidencyNeedsTheFp8Path) {
    BackendOptions options;
    options.device = "cuda";
    options.precision = "bf16";
    options.residency = "fp4";
    EXPECT_THROW(make_backend(options), Error);
    options.device = "cpu";
    options.precision = "";
    EXPECT_THROW(make_backend(options), Error);
}

}  // namespace
}  // namespace flux2::test
