#include "quant/nvfp4.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/float_codecs.h"

namespace flux2 {

namespace {

constexpr int64_t kTileRows = 128;
constexpr int64_t kTileCols = 4;

void check_scale_dims(int64_t rows, int64_t cols, const char* what) {
    check(rows >= 0 && cols >= 0, what, ": negative scale matrix shape [", rows, ", ", cols, "]");
}

}  // namespace

int64_t swizzled_scale_offset(int64_t r, int64_t c, int64_t cols) {
    const int64_t col_tiles = round_up(cols, kTileCols) / kTileCols;
    const int64_t row_block = r / kTileRows;
    const int64_t quarter = (r % kTileRows) / 32;  // which 32-row quarter of the tile
    const int64_t lane = r % 32;
    const int64_t col_tile = c / kTileCols;
    const int64_t col_in_tile = c % kTileCols;
    return ((row_block * col_tiles + col_tile) * 32 + lane) * 16 + quarter * 4 + col_in_tile;
}

std::vector<uint8_t> unswizzle_scales(const uint8_t* swizzled, int64_t rows, int64_t cols) {
    check_scale_dims(rows, cols, "unswizzle_scales");
    std::vector<uint8_t> linear(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) linear[r * cols + c] = swizzled[swizzled_scale_offset(r, c, cols)];
    }
    return linear;
}

std::vector<uint8_t> swizzle_scales(const uint8_t* linear, int64_t rows, int64_t cols) {
    check_scale_dims(rows, cols, "swizzle_scales");
    std::vector<uint8_t> swizzled(static_cast<size_t>(round_up(rows, kTileRows) * round_up(cols, kTileCols)), 0);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) swizzled[swizzled_scale_offset(r, c, cols)] = linear[r * cols + c];
    }
    return swizzled;
}

std::vector<uint8_t> slice_swizzled_rows(const uint8_t* swizzled, int64_t rows, int64_t cols, int64_t row_begin,
                                         int64_t row_count) {
    check_scale_dims(rows, cols, "slice_swizzled_rows");
    check(row_begin % kTileRows == 0, "slice_swizzled_rows: row_begin ", row_begin,
          " is not a multiple of 128, so the slice does not start on a 128x4 scale tile");
    check(row_begin >= 0 && row_count >= 0 && row_begin + row_count <= rows, "slice_swizzled_rows: rows [", row_begin,
          ", ", row_begin + row_count, ") out of range for a scale matrix of ", rows, " rows");
    // Row blocks are stored one after another, so whole blocks are one contiguous byte range.
    const int64_t padded_cols = round_up(cols, kTileCols);
    const int64_t out_rows = round_up(row_count, kTileRows);
    const uint8_t* begin = swizzled + row_begin * padded_cols;
    std::vector<uint8_t> out(begin, begin + out_rows * padded_cols);
    // Rows past row_count in the last block belong to the next slice: zero them, as swizzle_scales pads.
    for (int64_t r = row_count; r < out_rows; ++r) {
        for (int64_t c = 0; c < padded_cols; ++c) out[swizzled_scale_offset(r, c, padded_cols)] = 0;
    }
    return out;
}

void swap_nibbles(uint8_t* bytes, int64_t n) {
    for (int64_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>((bytes[i] >> 4) | (bytes[i] << 4));
}

// Mirrors comfy-kitchen's eager quantize_nvfp4 followed by its dequantize, operation by operation in fp32, because
// the w4a4 goldens were made with it: block scale = fp8(min(amax/6/tensor_scale, 448)); total = tensor_scale *
// block scale; a block whose total is 0 becomes 0; q = e2m1(clamp(x/total, +-6)); x' = q * total.
void fake_quantize_nvfp4(float* x, int64_t rows, int64_t cols, float tensor_scale) {
    check(cols % kNvfp4Block == 0, "fake_quantize_nvfp4: ", cols, " columns are not a multiple of ", kNvfp4Block);
    check(std::isfinite(tensor_scale) && tensor_scale >= 0.0f, "fake_quantize_nvfp4: tensor scale ", tensor_scale,
          " must be finite and non-negative");
    const int64_t n_blocks = rows * (cols / kNvfp4Block);
    parallel_for(n_blocks, 1024, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
            float* blk = x + b * kNvfp4Block;
            float amax = 0.0f;
            for (int i = 0; i < kNvfp4Block; ++i) amax = std::fmax(amax, std::fabs(blk[i]));
            // A zero tensor scale only comes from an all-zero input (dynamic scaling); the reference would divide
            // 0 by 0 there, we keep the zeros.
            float total = 0.0f;
            if (tensor_scale > 0.0f) {
                const float block_scale = std::fmin(amax / kE2m1Max / tensor_scale, kE4m3Max);
                total = tensor_scale * e4m3_to_f32(f32_to_e4m3(block_scale));
            }
            for (int i = 0; i < kNvfp4Block; ++i) {
                if (total == 0.0f) {
                    blk[i] = 0.0f;
                    continue;
                }
                const float scaled = std::fmin(std::fmax(blk[i] / total, -kE2m1Max), kE2m1Max);
                blk[i] = e2m1_to_f32(f32_to_e2m1(scaled)) * total;
            }
        }
    });
}

float dynamic_nvfp4_scale(const float* x, int64_t n) {
    float amax = 0.0f;
    for (int64_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    return amax / (kE4m3Max * kE2m1Max);
}

}  // namespace flux2
