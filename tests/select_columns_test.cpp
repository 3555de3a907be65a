// select_columns (quant/linear_weight.h), the row-parallel half of tensor parallelism: the kept input columns
// dequantize to exactly those columns of the whole weight, in every format.
#include <gtest/gtest.h>

#include "quant/linear_weight.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

constexpr int64_t kOut = 3, kIn = 64;

// Byte i of a weight's storage: varied, but every NVFP4 code and E4M3 scale stays finite.
std::vector<uint8_t> bytes(size_t n, uint8_t mask) {
    std::vector<uint8_t> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>((i * 37 + 11) & mask);
    return b;
}

LinearWeight weight(WeightFormat format) {
    LinearWeight w;
    w.name = "test";
    w.out_features = kOut;
    w.in_features = kIn;
    w.format = format;
    if (format == WeightFormat::dense) {
        w.dense.dtype = DType::BF16;
        w.dense.bytes = bytes(kOut * kIn * 2, 0x3f);
    } else if (format == WeightFormat::nvfp4) {
        w.nvfp4.codes = bytes(kOut * kIn / 2, 0x77);
        w.nvfp4.scales = bytes(kOut * kIn / 16, 0x3f);
        w.nvfp4.weight_scale_2 = 0.5f;
    } else {
        w.fp8.codes = bytes(kOut * kIn, 0x5f);
        w.fp8.scale = 0.25f;
    }
    return w;
}

class SelectColumns : public ::testing::TestWithParam<WeightFormat> {};

TEST_P(SelectColumns, KeepsExactlyTheChosenColumns) {
    const LinearWeight w = weight(GetParam());
    const std::vector<ColumnRange> ranges = {{32, 16}, {0, 16}};
    const LinearWeight s = select_columns(w, ranges, "half");
    ASSERT_EQ(s.out_features, kOut);
    ASSERT_EQ(s.in_features, 32);
    const std::vector<float> all = dequantize(w), kept = dequantize(s);
    for (int64_t n = 0; n < kOut; ++n) {
        int64_t j = 0;
        for (const ColumnRange& r : ranges)
            for (int64_t c = r.begin; c < r.begin + r.count; ++c, ++j)
                ASSERT_EQ(kept[n * 32 + j], all[n * kIn + c]) << "row " << n << " column " << c;
    }
}

INSTANTIATE_TEST_SUITE_P(Formats, SelectColumns,
                         ::testing::Values(WeightFormat::dense, WeightFormat::nvfp4, WeightFormat::fp8));

TEST(SelectColumnsRefusals, Nvfp4SplitsOnlyOnScaleBlocks) {
    test::expect_error(
        [] {
            select_columns(weight(WeightFormat::nvfp4), {{8, 16}}, "x");
        },
        {"splits only on its 16-column scale blocks", "got [8, 24)"});
    test::expect_error(
        [] {
            select_columns(weight(WeightFormat::dense), {{60, 8}}, "x");
        },
        {"columns [60, 68) out of range", "64 columns"});
}

}  // namespace
}  // namespace flux2
