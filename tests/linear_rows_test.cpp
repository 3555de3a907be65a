// Backend::linear_rows on the CPU (the numerical truth): a part of a layer, its output rows [begin, begin + count),
// equals those columns of the whole layer for every weight format and activation mode, with a LoRA branch; a layer
// run in parts counts once in the path summary; a range outside the layer is refused by name. linear_into writes a
// joint sequence's token range.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "quant/nvfp4_quantizer.h"
#include "test_util.h"

namespace flux2::test {
namespace {

std::vector<float> normal(size_t n, float stddev, std::mt19937& rng) {
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

LinearWeight layer(WeightFormat format, int64_t n, int64_t k, std::mt19937& rng) {
    LinearWeight w;
    w.name = "test.packed";
    w.out_features = n;
    w.in_features = k;
    w.format = format;
    const std::vector<float> values = normal(static_cast<size_t>(n * k), 0.1f, rng);
    if (format == WeightFormat::nvfp4) {
        w.nvfp4 = quantize_nvfp4_weight(values.data(), n, k);
    } else {
        w.dense.dtype = DType::F32;
        w.dense.bytes.resize(values.size() * sizeof(float));
        std::memcpy(w.dense.bytes.data(), values.data(), w.dense.bytes.size());
    }
    return w;
}

TEST(LinearRows, PartsEqualTheWholeLayersColumns) {
    std::mt19937 rng(20261203);
    const int64_t m = 9, k = 48, n = 80;
    for (const auto activations : {Nvfp4Activations::w4a16, Nvfp4Activations::w4a4}) {
        BackendOptions options;
        options.nvfp4_activations = activations;
        auto be = make_backend(options);
        for (const WeightFormat format : {WeightFormat::dense, WeightFormat::nvfp4}) {
            for (const int64_t rank : {0, 4}) {
                SCOPED_TRACE(std::string(weight_format_name(format)) + " rank " + std::to_string(rank));
                LinearWeight w = layer(format, n, k, rng);
                if (rank) {
                    auto l = std::make_shared<LoraBranch>();
                    l->rank = rank;
                    l->in_features = k;
                    l->out_features = n;
                    l->a = normal(static_cast<size_t>(rank * k), 0.2f, rng);
                    l->b = normal(static_cast<size_t>(n * rank), 0.2f, rng);
                    w.lora = l;
                }
                Tensor x = Tensor::from_f32({1, m, k}, normal(static_cast<size_t>(m * k), 1.0f, rng));
                const std::vector<float> whole = be->linear(x, w).to_vector();
                be->reset_path_counts();
                for (const auto& [begin, count] : {std::pair<int64_t, int64_t>{0, 48}, {48, 32}, {5, 1}, {0, 80}}) {
                    Tensor part = be->linear_rows(x, w, begin, count);
                    ASSERT_EQ(part.shape(), (Shape{1, m, count}));
                    std::vector<float> want;
                    for (int64_t r = 0; r < m; ++r)
                        want.insert(want.end(), whole.begin() + r * n + begin, whole.begin() + r * n + begin + count);
                    EXPECT_LE(rel_error(part.to_vector(), want), 1e-6) << begin << " + " << count;
                }
                // Two parts begin at row 0 (a whole layer is one part): counted twice, not four times.
                EXPECT_NE(be->path_summary().find(" x2"), std::string::npos) << be->path_summary();
            }
        }
    }
}

// linear_into on the CPU (the Backend default): it returns the layer's output and copies its columns [col, N) into
// the joint tensor's token range, leaving every other element as it was; a range that does not fit is refused.
TEST(LinearRows, IntoAJointSequenceWritesItsColumnsAtItsTokens) {
    std::mt19937 rng(20261204);
    const int64_t B = 2, m = 5, Lo = 12, tok = 4, k = 32, n = 48, col = 16;
    auto be = make_backend(BackendOptions{});
    const LinearWeight w = layer(WeightFormat::dense, n, k, rng);
    Tensor x = Tensor::from_f32({B, m, k}, normal(static_cast<size_t>(B * m * k), 1.0f, rng));
    const std::vector<float> before = normal(static_cast<size_t>(B * Lo * n), 1.0f, rng);
    Tensor joint = Tensor::from_f32({B, Lo, n}, before);
    const std::vector<float> y = be->linear_into(x, w, joint, tok, col).to_vector();
    EXPECT_EQ(y, be->linear(x, w).to_vector());
    const std::vector<float> after = joint.to_vector();
    for (int64_t b = 0; b < B; ++b)
        for (int64_t l = 0; l < Lo; ++l)
            for (int64_t c = 0; c < n; ++c) {
                const size_t at = static_cast<size_t>((b * Lo + l) * n + c);
                const bool written = l >= tok && l < tok + m && c >= col;
                EXPECT_EQ(after[at], written ? y[static_cast<size_t>((b * m + l - tok) * n + c)] : before[at])
                    << b << ", " << l << ", " << c;
            }
    EXPECT_THROW(be->linear_into(x, w, joint, Lo - m + 1, col), std::exception);
}

TEST(LinearRows, ARangeOutsideTheLayerIsRefusedByName) {
    std::mt19937 rng(7);
    auto be = make_backend(BackendOptions{});
    const LinearWeight w = layer(WeightFormat::dense, 32, 16, rng);
    const Tensor x = Tensor::zeros({2, 16});
    for (const auto& [begin, count] : {std::pair<int64_t, int64_t>{30, 3}, {-1, 4}, {0, 33}}) {
        try {
            be->linear_rows(x, w, begin, count);
            ADD_FAILURE() << "rows " << begin << " + " << count << " of 32 were taken";
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find("test.packed"), std::string::npos) << e.what();
        }
    }
}

}  // namespace
}  // namespace flux2::test
