// Backend::linear_rows on the GPU: a part of a layer (its output rows [begin, begin + count)) equals those columns
// of the whole layer and of the CPU truth, on the bf16 and fp8 paths and with NVFP4 kept resident, without and with
// a LoRA branch (carried in the fp8 GEMM), from BF16 input and from the E4M3 rows of a fused producer that both
// parts read (the single block's [q | k | v] and MLP parts of one normalized input). linear_into writes a joint
// sequence's rows in place.
#include "cuda_test_util.h"
#include "quant/nvfp4_quantizer.h"

namespace flux2::test {
namespace {

class CudaLinearRows : public CudaTest, public ::testing::WithParamInterface<std::string> {
protected:
    // "bf16", "fp8" or "fp8/fp4" (fp8 with NVFP4 kept resident).
    std::string precision() const override { return GetParam().substr(0, GetParam().find('/')); }
    std::string residency() const { return GetParam().find('/') == std::string::npos ? "" : "fp4"; }

    // An NVFP4 layer [n, k], with a LoRA branch of this rank when it is not 0.
    LinearWeight nvfp4_layer(const char* name, int64_t n, int64_t k, int64_t rank) {
        LinearWeight w;
        w.name = name;
        w.out_features = n;
        w.in_features = k;
        w.format = WeightFormat::nvfp4;
        w.nvfp4 = quantize_nvfp4_weight(randn({n, k}, 1.0f / std::sqrt(float(k))).f32(), n, k);
        if (rank) w.lora = random_lora(rank, k, n);
        return w;
    }
};

// Columns [begin, begin + count) of y viewed as [rows, n].
std::vector<float> columns(const std::vector<float>& y, int64_t n, int64_t begin, int64_t count) {
    std::vector<float> out;
    for (size_t r = 0; r < y.size() / static_cast<size_t>(n); ++r)
        out.insert(out.end(), y.begin() + r * n + begin, y.begin() + r * n + begin + count);
    return out;
}

TEST_P(CudaLinearRows, PartsEqualTheWholeLayersColumns) {
    auto gpu = make_backend(cuda_options(precision(), residency()));
    auto cpu = make_backend(BackendOptions{});
    const double vs_cpu = precision() == "fp8" ? 8e-2 : 1e-2;
    const int64_t m = 37, k = 144, n = 3 * 64 + 2 * 96;  // [q | k | v | gate | up] at head width 64, MLP 96
    for (const int64_t rank : {0, 8}) {
        SCOPED_TRACE(rank);
        const LinearWeight w = nvfp4_layer("test.packed", n, k, rank);  // n > k: fp8 carries a branch in its GEMM
        Tensor x = randn({1, m, k}), shift = randn({1, k}, 0.5f), scale = randn({1, k}, 0.5f);
        Tensor gx = gpu->upload(x);
        const std::vector<float> whole = gpu->download(gpu->linear(gx, w)).to_vector();
        // The normalized input as the single block makes it, then both parts of the layer from that one tensor.
        Tensor nx = gpu->layer_norm_modulate_for(w, gx, gpu->upload(shift), gpu->upload(scale), 1e-6f);
        const std::vector<float> whole_n = gpu->download(gpu->linear(nx, w)).to_vector();
        gpu->reset_path_counts();
        // Parts whose output rows are whole 16-byte units, as the model runs them: cuBLASLt has no FP8 GEMM for a
        // part of 100 columns (it says so, by shape), and there the BF16 one with the LoRA branch differed from the
        // whole layer's columns by 2.8e-3 (one H200, 2026-12-04).
        for (const auto& [begin, count] : {std::pair<int64_t, int64_t>{0, 192}, {192, 192}, {64, 96}}) {
            SCOPED_TRACE(begin);
            const std::vector<float> part = gpu->download(gpu->linear_rows(gx, w, begin, count)).to_vector();
            ASSERT_EQ(part.size(), static_cast<size_t>(m * count));
            ASSERT_TRUE(all_finite(part));
            EXPECT_LE(rel_error(part, columns(whole, n, begin, count)), 2e-3);
            EXPECT_LE(rel_error(part, cpu->linear_rows(x, w, begin, count).to_vector()), vs_cpu);
            const std::vector<float> part_n = gpu->download(gpu->linear_rows(nx, w, begin, count)).to_vector();
            EXPECT_LE(rel_error(part_n, columns(whole_n, n, begin, count)), 2e-3);
        }
        // One layer run in parts is one linear in the path counts: the part at row 0 counts it (twice here).
        const std::string paths = gpu->path_summary();
        EXPECT_NE(paths.find(" x2"), std::string::npos) << paths;
        EXPECT_EQ(paths.find(" x6"), std::string::npos) << paths;
        EXPECT_THROW(gpu->linear_rows(gx, w, 300, 100), std::exception);
    }
}

// linear_into, as the double block projects its text and image [q | k | v] into one joint sequence: one sample's
// rows are written in place by the GEMM and returned as a view of the joint tensor holding the layer's output, with
// the tokens outside the range untouched; from BF16 input and from a fused producer's E4M3 rows, without and
// with a LoRA branch. Two samples' ranges are not contiguous: their columns [col, N) are copied (the CPU's way).
TEST_P(CudaLinearRows, IntoAJointSequenceEqualsTheLayer) {
    auto gpu = make_backend(cuda_options(precision(), residency()));
    const int64_t m = 37, k = 144, n = 3 * 64, Lo = 53, tok = 11, col = 2 * 64;
    for (const int64_t rank : {0, 8}) {
        SCOPED_TRACE(rank);
        const LinearWeight w = nvfp4_layer("test.qkv", n, k, rank);
        for (const int64_t B : {1, 2}) {
            SCOPED_TRACE(B);
            Tensor x = gpu->upload(randn({B, m, k})), shift = gpu->upload(randn({B, k}, 0.5f));
            Tensor scale = gpu->upload(randn({B, k}, 0.5f));
            Tensor nx = gpu->layer_norm_modulate_for(w, x, shift, scale, 1e-6f);
            for (const Tensor* in : {&x, &nx}) {
                const std::vector<float> want = gpu->download(gpu->linear(*in, w)).to_vector();
                const Tensor initial = randn({B, Lo, n});
                const std::vector<float> before = initial.to_vector();
                Tensor joint = gpu->upload(initial);
                const std::vector<float> y = gpu->download(gpu->linear_into(*in, w, joint, tok, col)).to_vector();
                EXPECT_LE(rel_error(y, want), 2e-3);  // the same GEMM; cuBLASLt may pick by D's alignment
                const std::vector<float> after = gpu->download(joint).to_vector();
                int64_t wrong = 0;
                for (int64_t b = 0; b < B; ++b)
                    for (int64_t l = 0; l < Lo; ++l)
                        for (int64_t c = 0; c < n; ++c) {
                            const size_t at = static_cast<size_t>((b * Lo + l) * n + c);
                            const bool mine = l >= tok && l < tok + m;
                            if (mine && c >= col) {
                                wrong += after[at] != y[static_cast<size_t>((b * m + l - tok) * n + c)];
                            } else if (!mine) {
                                wrong += after[at] != before[at];  // columns before col of the range: either
                            }
                        }
                EXPECT_EQ(wrong, 0);
            }
        }
        Tensor x = gpu->upload(randn({1, m, k})), joint = gpu->uninitialized({1, Lo, n});
        EXPECT_THROW(gpu->linear_into(x, w, joint, Lo - m + 1, col), std::exception);
    }
}

INSTANTIATE_TEST_SUITE_P(Paths, CudaLinearRows, ::testing::Values("bf16", "fp8", "fp8/fp4"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                             std::string name = info.param;
                             for (char& c : name)
                                 if (c == '/') c = '_';
                             return name;
                         });

}  // namespace
}  // namespace flux2::test
