#include "quant/nvfp4_gemm_layout.h"

#include <cmath>

#include "core/error.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"

namespace flux2 {

Nvfp4GemmWeight prepare_nvfp4_gemm_weight(const Nvfp4Weight& w, int64_t rows, int64_t cols, const std::string& name) {
    check(rows > 0 && cols > 0 && cols % kNvfp4Block == 0, "NVFP4 weight ", name, ": shape [", rows, ", ", cols,
          "] needs in_features divisible by ", kNvfp4Block);
    const int64_t blocks = cols / kNvfp4Block;
    check(static_cast<int64_t>(w.codes.size()) == rows * cols / 2, "NVFP4 weight ", name, ": ", w.codes.size(),
          " code bytes, expected ", rows * cols / 2, " for [", rows, ", ", cols, "]");
    check(static_cast<int64_t>(w.scales.size()) == rows * blocks, "NVFP4 weight ", name, ": ", w.scales.size(),
          " block scale bytes, expected ", rows * blocks, " for [", rows, ", ", cols, "]");
    Nvfp4GemmWeight g;
    g.codes = w.codes;
    swap_nibbles(g.codes.data(), static_cast<int64_t>(g.codes.size()));  // hi-first -> low nibble first
    g.scales = swizzle_scales(w.scales.data(), rows, blocks);
    g.weight_scale_2 = w.weight_scale_2;
    return g;
}

Nvfp4GemmActivations quantize_nvfp4_gemm_activations(const float* x, int64_t rows, int64_t cols, float tensor_scale) {
    check(cols % kNvfp4Block == 0, "quantize_nvfp4_gemm_activations: ", cols, " columns are not a multiple of ",
          kNvfp4Block);
    const int64_t blocks = cols / kNvfp4Block;
    Nvfp4GemmActivations a;
    a.codes.assign(static_cast<size_t>(rows * cols / 2), 0);
    a.scales.assign(static_cast<size_t>(fp4_scale_bytes(rows, blocks)), 0);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < blocks; ++b) {
            const float* blk = x + r * cols + b * kNvfp4Block;
            float amax = 0.0f;
            for (int i = 0; i < kNvfp4Block; ++i) amax = std::fmax(amax, std::fabs(blk[i]));
            // Same operations, in the same order, as fake_quantize_nvfp4.
            uint8_t s = 0;
            float total = 0.0f;
            if (tensor_scale > 0.0f) {
                s = f32_to_e4m3(std::fmin(amax / kE2m1Max / tensor_scale, kE4m3Max));
                total = tensor_scale * e4m3_to_f32(s);
            }
            a.scales[fp4_scale_offset(r, b, blocks)] = s;
            uint8_t* out = a.codes.data() + r * cols / 2 + b * kNvfp4Block / 2;
            for (int i = 0; i < kNvfp4Block; i += 2) {
                uint8_t c[2] = {0, 0};
                for (int j = 0; j < 2 && total != 0.0f; ++j)
                    c[j] = fp4_e2m1_code(std::fmin(std::fmax(blk[i + j] / total, -kE2m1Max), kE2m1Max));
                out[i / 2] = fp4_pack(c[0], c[1]);
            }
        }
    }
    return a;
}

std::vector<float> decode_nvfp4_gemm_operand(const uint8_t* codes, const uint8_t* swizzled_scales, int64_t rows,
                                             int64_t cols) {
    const int64_t blocks = cols / kNvfp4Block;
    std::vector<float> out(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < cols; ++k) {
            const uint8_t byte = codes[(r * cols + k) / 2];
            const uint8_t code = (k % 2 == 0) ? (byte & 0xF) : (byte >> 4);
            out[r * cols + k] =
                e2m1_to_f32(code) * e4m3_to_f32(swizzled_scales[fp4_scale_offset(r, k / kNvfp4Block, blocks)]);
        }
    }
    return out;
}

}  // namespace flux2
