#include "models/random_fill.h"

#include <functional>

#include "core/parallel.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"

namespace flux2 {

namespace {
// Rows are generated independently (seeded by layer and row), so the fill parallelizes and is reproducible.
void fill_rows(int64_t rows, uint64_t layer_seed, const std::function<void(int64_t, uint64_t&)>& fill_row) {
    parallel_for(rows, 64, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            uint64_t state = layer_seed ^ (static_cast<uint64_t>(r) * 0xD1B54A32D192ED03ull);
            fill_row(r, state);
        }
    });
}

// Uniform in [0, 1) from the top 24 bits.
float unit(uint64_t bits) { return static_cast<float>(bits >> 40) * 0x1.0p-24f; }

void set_shape(LinearWeight& w, int64_t out, int64_t in, WeightFormat format) {
    w.out_features = out;
    w.in_features = in;
    w.format = format;
}
}  // namespace

void fill_random_nvfp4(LinearWeight& w, int64_t out, int64_t in, uint64_t layer_seed, float target_std) {
    set_shape(w, out, in, WeightFormat::nvfp4);
    w.nvfp4.codes.resize(out * in / 2);
    w.nvfp4.scales.resize(out * in / kNvfp4Block);
    fill_rows(out, layer_seed, [&](int64_t r, uint64_t& s) {
        uint8_t* codes = w.nvfp4.codes.data() + r * in / 2;
        for (int64_t i = 0; i < in / 2; i += 8) {
            const uint64_t bits = splitmix64(s);
            for (int64_t j = 0; j < 8 && i + j < in / 2; ++j) codes[i + j] = static_cast<uint8_t>(bits >> (8 * j));
        }
        uint8_t* scales = w.nvfp4.scales.data() + r * in / kNvfp4Block;
        for (int64_t b = 0; b < in / kNvfp4Block; ++b)  // block scales spread over [0.5, 2)
            scales[b] = f32_to_e4m3(0.5f + 1.5f * unit(splitmix64(s)));
    });
    // Uniform E2M1 codes have an RMS of ~2.93 and the block scales average ~1.25.
    w.nvfp4.weight_scale_2 = target_std / (2.93f * 1.25f);
    w.nvfp4.input_scale = 8.0f / (kE4m3Max * kE2m1Max);
}

void fill_random_bf16(LinearWeight& w, int64_t out, int64_t in, uint64_t layer_seed, float target_std) {
    set_shape(w, out, in, WeightFormat::dense);
    w.dense.dtype = DType::BF16;
    w.dense.bytes.resize(out * in * 2);
    fill_rows(out, layer_seed, [&](int64_t r, uint64_t& s) {
        auto* row = reinterpret_cast<uint16_t*>(w.dense.bytes.data()) + r * in;
        for (int64_t i = 0; i < in; ++i)  // uniform in [-sqrt(3), sqrt(3)) * std has the wanted std
            row[i] = f32_to_bf16((unit(splitmix64(s)) * 2.0f - 1.0f) * 1.7320508f * target_std);
    });
}

void fill_random_fp8(LinearWeight& w, int64_t out, int64_t in, uint64_t layer_seed, float target_std) {
    set_shape(w, out, in, WeightFormat::fp8);
    w.fp8.codes.resize(out * in);
    fill_rows(out, layer_seed, [&](int64_t r, uint64_t& s) {
        uint8_t* row = w.fp8.codes.data() + r * in;
        for (int64_t i = 0; i < in; i += 8) {
            const uint64_t bits = splitmix64(s);
            for (int64_t j = 0; j < 8 && i + j < in; ++j) {
                // Codes with exponent field up to 7 (|v| < 2): no NaN, and a spread like a trained layer's.
                const uint8_t b = static_cast<uint8_t>(bits >> (8 * j));
                row[i + j] = static_cast<uint8_t>((b & 0x80) | (b & 0x3F));
            }
        }
    });
    // Those codes (sign, exponent field 0-7, mantissa 0-7) have an RMS of ~0.60.
    w.fp8.scale = target_std / 0.60f;
}

void fill_random_uniform(float* values, int64_t rows, int64_t cols, uint64_t seed, float mean, float stddev) {
    fill_rows(rows, seed, [&](int64_t r, uint64_t& s) {
        for (int64_t i = 0; i < cols; ++i)
            values[r * cols + i] = mean + (unit(splitmix64(s)) * 2.0f - 1.0f) * 1.7320508f * stddev;
    });
}

}  // namespace flux2
