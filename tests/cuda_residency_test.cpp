// The fp4-resident fp8 path (BackendOptions::residency = "fp4") against the default fp8 residency: the per-call
// NVFP4 -> E4M3 conversion must give the very same GEMM operands, so the outputs are bit-identical, also when
// layers of different sizes take turns converting.
#include "cuda_test_util.h"
#include "golden_data.h"
#include "models/flux2/flux2_transformer.h"
#include "quant/nvfp4_quantizer.h"
#ifdef FLUX2_HAVE_CUDA
#include "backend/cuda/launchers.h"
#endif

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
#ifdef FLUX2_HAVE_CUDA
    void check_converters(int64_t cols);
#endif
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
    // big then small then big again: `small` converts between the two uses of `big`.
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

// A layer wider than one conversion chunk (128 MiB of E4M3: here [24576, 6144], as dev's single-block linear2
// transposed) is converted and multiplied chunk of output channels by chunk into the columns of one output: the
// same products as the whole layer's GEMM, up to the accumulation order a GEMM of another width may take.
TEST_F(CudaResidencyTest, ALayerWiderThanAChunkIsMultipliedChunkByChunk) {
#ifdef FLUX2_HAVE_CUDA
    const int64_t out = 24576, in = 6144;
    LinearWeight w;
    w.name = "wide";
    w.out_features = out;
    w.in_features = in;
    w.format = WeightFormat::nvfp4;
    std::uniform_int_distribution<int> byte(0, 255), scale_code(0x30, 0x48);  // finite E4M3 block scales
    w.nvfp4.codes.resize(out * in / 2);
    for (auto& c : w.nvfp4.codes) c = static_cast<uint8_t>(byte(rng));
    w.nvfp4.scales.resize(out * in / 16);
    for (auto& c : w.nvfp4.scales) c = static_cast<uint8_t>(scale_code(rng));
    w.nvfp4.weight_scale_2 = 0.01f;
    LinearWeight w4 = w;
    auto resident = make_backend(cuda_options("fp8", "fp4"));
    Tensor x = randn({1, 64, in});
    const std::vector<float> want = down(be->linear(up(x), w));
    const std::vector<float> got = resident->download(resident->linear(resident->upload(x), w4)).to_vector();
    ASSERT_TRUE(all_finite(got));
    EXPECT_LE(rel_error(got, want), 2e-3);
    // Each chunk's columns on their own: a chunk written at the wrong offset would leave others' columns unset.
    for (const int64_t col : {int64_t{0}, out / 2 - 1, out / 2, out - 1}) {
        double num = 0, den = 0;
        for (int64_t r = 0; r < 64; ++r) {
            const double d = got[r * out + col] - want[r * out + col];
            num += d * d;
            den += double(want[r * out + col]) * want[r * out + col];
        }
        EXPECT_LE(std::sqrt(num / den), 5e-3) << "column " << col;
    }
    EXPECT_NE(resident->path_summary().find("nvfp4(resident)"), std::string::npos) << resident->path_summary();
    // A part of the layer (linear_rows) across two chunks, from an offset that is no chunk boundary.
    const int64_t begin = 1024, count = 23040;
    const std::vector<float> part =
        resident->download(resident->linear_rows(resident->upload(x), w4, begin, count)).to_vector();
    std::vector<float> want_part;
    for (int64_t r = 0; r < 64; ++r)
        want_part.insert(want_part.end(), want.begin() + r * out + begin, want.begin() + r * out + begin + count);
    ASSERT_EQ(part.size(), want_part.size());
    EXPECT_LE(rel_error(part, want_part), 2e-3);
#endif
}

// A recorded step converts each layer into a buffer of the graph's: a larger layer converted after the recording
// (which grew the one buffer shared by all layers, when there was one) must not make a replay write weight codes
// into memory the pool has since given to other tensors. Tensors of many sizes made after it must come through a
// replay unchanged, and the replay must still give the recorded outputs.
TEST_F(CudaResidencyTest, AReplayAfterTheBufferGrewWritesOnlyItsOwnMemory) {
#ifdef FLUX2_HAVE_CUDA
    auto backend = make_backend(cuda_options("fp8", "fp4"));
    Flux2Transformer model = Flux2Transformer::load(data_path("tiny-klein-nvfp4.safetensors"), *backend);
    const Flux2Inputs in = tiny_klein_case0();
    std::vector<float> want;
    for (int i = 0; i < 3; ++i) want = model.forward(in).to_vector();  // eager, recorded, replayed
    // Wider than every layer of the tiny model.
    const LinearWeight big = nvfp4(1024, 1024, "big");
    Tensor y = backend->linear(backend->upload(randn({1, 3, 1024})), big);
    std::vector<Tensor> host, live;
    for (int64_t n = 256; n <= (int64_t{1} << 20); n *= 2) {
        for (int copy = 0; copy < 2; ++copy) {
            host.push_back(randn({n}));
            live.push_back(backend->upload(host.back()));
        }
    }
    EXPECT_EQ(model.forward(in).to_vector(), want);
    for (size_t i = 0; i < live.size(); ++i)
        EXPECT_EQ(backend->download(live[i]).to_vector(), host[i].to_vector()) << host[i].numel() << " floats";
    EXPECT_TRUE(all_finite(backend->download(y).to_vector()));
#endif
}

#ifdef FLUX2_HAVE_CUDA
// Both weight converters (once at load, and per layer for fp4-resident weights) against the scalar codec: every
// code byte (both signs of zero included) under a spread of block scales, rows of different ranges.
// Rows of 32, 201 and 2100 blocks: the per-layer converter covers them in one pass of its threads (some idle), one
// partial pass, and three of 1024 blocks (the last partial).
TEST_F(CudaResidencyTest, WeightConvertersMatchTheScalarCodec) {
    for (const int64_t cols : {512, 3216, 33600}) {
        SCOPED_TRACE(cols);
        check_converters(cols);
    }
}

void CudaResidencyTest::check_converters(int64_t cols) {
    const int64_t rows = 6, blocks = cols / 16;
    const float scale_2 = 0.0123f;
    std::vector<uint8_t> codes(rows * cols / 2), block_scales(rows * blocks);
    for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(i * 37 + i / 256);
    std::uniform_int_distribution<int> scale_code(0x08, 0x7E);  // normal and subnormal-free E4M3 block scales
    for (auto& s : block_scales) s = static_cast<uint8_t>(scale_code(rng));
    for (int64_t b = 0; b < blocks; ++b) block_scales[3 * blocks + b] = 0;  // an all-zero row gets scale 1

    auto to_device = [&](const std::vector<uint8_t>& v) {
        Tensor t = cuda->empty({static_cast<int64_t>(v.size())}, DType::U8);
        EXPECT_EQ(cudaMemcpy(t.raw(), v.data(), v.size(), cudaMemcpyHostToDevice), cudaSuccess);
        return t;
    };
    Tensor d_codes = to_device(codes), d_scales = to_device(block_scales);
    Tensor q_rows = cuda->empty({rows * cols}, DType::F8_E4M3), q_scaled = cuda->empty({rows * cols}, DType::F8_E4M3);
    Tensor row_scales = cuda->empty({rows}, DType::F32);
    const auto* c = static_cast<const uint8_t*>(d_codes.raw());
    const auto* s = static_cast<const uint8_t*>(d_scales.raw());
    cuda::launch_nvfp4_to_fp8_rows(c, s, scale_2, static_cast<uint8_t*>(q_rows.raw()),
                                   static_cast<float*>(row_scales.raw()), rows, cols, cuda->stream());
    cuda::launch_nvfp4_to_fp8_scaled(c, s, scale_2, static_cast<const float*>(row_scales.raw()),
                                     static_cast<uint8_t*>(q_scaled.raw()), rows, cols, cuda->stream());
    cuda->synchronize();
    std::vector<uint8_t> got_rows(rows * cols), got_scaled(rows * cols);
    std::vector<float> got_scales(rows);
    ASSERT_EQ(cudaMemcpy(got_rows.data(), q_rows.raw(), got_rows.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(got_scaled.data(), q_scaled.raw(), got_scaled.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(got_scales.data(), row_scales.raw(), rows * 4, cudaMemcpyDeviceToHost), cudaSuccess);

    int mismatches = 0;
    for (int64_t r = 0; r < rows; ++r) {
        auto value = [&](int64_t i) {  // element i of row r, dequantized the way the kernels do
            const uint8_t byte = codes[(r * cols + i) / 2];
            const float s = e4m3_to_f32(block_scales[r * blocks + i / 16]) * scale_2;
            return e2m1_to_f32(i % 2 == 0 ? byte >> 4 : byte & 0xF) * s;
        };
        float amax = 0;
        for (int64_t i = 0; i < cols; ++i) amax = std::max(amax, std::fabs(value(i)));
        const float scale = amax > 0 ? amax / 448.0f : 1.0f;
        EXPECT_EQ(got_scales[r], scale) << "row " << r;
        for (int64_t i = 0; i < cols; ++i) {
            const float v = value(i);
            // E2M1 has a negative zero; E4M3 keeps its sign.
            const uint8_t want = v == 0.0f ? (std::signbit(v) ? 0x80 : 0x00) : f32_to_e4m3(v / scale);
            mismatches += got_rows[r * cols + i] != want;
            mismatches += got_scaled[r * cols + i] != want;
        }
    }
    EXPECT_EQ(mismatches, 0);
}
#endif

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
