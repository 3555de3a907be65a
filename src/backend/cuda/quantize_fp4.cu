// NVFP4 quantization of BF16 activations for the fp4 GEMM: one thread per 16-element block computes the block's
// E4M3 scale, writes it at its 128x4 swizzled offset and packs the 16 E2M1 codes (low nibble first) into 8 bytes.
// The arithmetic is fake_quantize_nvfp4's, operation by operation in fp32 (IEEE division: this file must not be
// built with fast math), so the codes match quantize_nvfp4_gemm_activations byte for byte.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp4_launchers.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "core/error.h"
#include "quant/nvfp4_gemm_layout.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;
constexpr int kBlock = 16;
constexpr float kE2m1MaxF = 6.0f;

// amax(|x|) over the whole tensor into *amax (zeroed before): non-negative floats order like their bit patterns.
__global__ void amax_kernel(const bf16* x, int64_t n, float* amax) {
    float m = 0.0f;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        m = fmaxf(m, fabsf(__bfloat162float(x[i])));
    m = block_max(m);
    if (threadIdx.x == 0) atomicMax(reinterpret_cast<unsigned int*>(amax), __float_as_uint(m));
}

__global__ void quantize_nvfp4_kernel(const bf16* x, uint8_t* codes, uint8_t* scales, float* scalars, int64_t rows,
                                      int64_t cols, bool dynamic, float input_scale, float alpha_factor) {
    const float tensor_scale = dynamic ? scalars[3] / (kE4m3MaxF * kE2m1MaxF) : input_scale;
    const int64_t blocks = cols / kBlock, n = rows * blocks;
    const int64_t first = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
    if (first == 0) {
        scalars[0] = tensor_scale * alpha_factor;
        scalars[1] = 0.0f;
        scalars[2] = tensor_scale;
    }
    for (int64_t i = first; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / blocks, b = i % blocks;
        float v[kBlock];
        load_bf16<8>(x + i * kBlock, reinterpret_cast<float(&)[8]>(v[0]));
        load_bf16<8>(x + i * kBlock + 8, reinterpret_cast<float(&)[8]>(v[8]));
        float amax = 0.0f;
#pragma unroll
        for (int j = 0; j < kBlock; ++j) amax = fmaxf(amax, fabsf(v[j]));
        uint8_t s = 0;
        float total = 0.0f;
        if (tensor_scale > 0.0f) {
            s = float_to_e4m3(fminf(amax / kE2m1MaxF / tensor_scale, kE4m3MaxF));
            total = tensor_scale * e4m3_to_float(s);
        }
        scales[fp4_scale_offset(r, b, blocks)] = s;
        uint32_t packed[2] = {0, 0};
        if (total != 0.0f) {
#pragma unroll
            for (int j = 0; j < kBlock; j += 2) {
                const uint8_t lo = fp4_e2m1_code(fminf(fmaxf(v[j] / total, -kE2m1MaxF), kE2m1MaxF));
                const uint8_t hi = fp4_e2m1_code(fminf(fmaxf(v[j + 1] / total, -kE2m1MaxF), kE2m1MaxF));
                packed[j / 8] |= uint32_t(fp4_pack(lo, hi)) << (8 * ((j / 2) % 4));
            }
        }
        *reinterpret_cast<uint2*>(codes + i * (kBlock / 2)) = make_uint2(packed[0], packed[1]);
    }
}
}  // namespace

void launch_quantize_nvfp4(const bf16* x, uint8_t* codes, uint8_t* scales, float* scalars, int64_t rows,
                           int64_t cols, bool dynamic, float input_scale, float alpha_factor, cudaStream_t stream) {
    const int64_t blocks = cols / kBlock, n = rows * blocks;
    // The padding of the swizzled scale matrix (rows up to 128, scale columns up to 4) must read as zero scales.
    if (rows % 128 != 0 || blocks % 4 != 0)
        FLUX2_CUDA_CHECK(cudaMemsetAsync(scales, 0, fp4_scale_bytes(rows, blocks), stream));
    if (dynamic) {
        FLUX2_CUDA_CHECK(cudaMemsetAsync(scalars + 3, 0, sizeof(float), stream));
        if (n > 0) {
            amax_kernel<<<grid_for(rows * cols, kThreads), kThreads, 0, stream>>>(x, rows * cols, scalars + 3);
            FLUX2_CUDA_CHECK_LAUNCH("amax_kernel");
        }
    }
    quantize_nvfp4_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, codes, scales, scalars, rows, cols,
                                                                          dynamic, input_scale, alpha_factor);
    FLUX2_CUDA_CHECK_LAUNCH("quantize_nvfp4_kernel");
}

}  // namespace cuda

Fp4Activations CudaBackend::quantize_fp4(const Tensor& x, std::optional<float> input_scale, float alpha_factor) {
    FLUX2_PROFILE_OP("quantize activations fp4");
    expect_device_bf16(x, "quantize_fp4", "x");
    check(x.ndim() >= 1, "quantize_fp4: x must have at least one dimension");
    const int64_t cols = x.dim(-1), rows = cols ? x.numel() / cols : 0;
    check(cols % 16 == 0, "quantize_fp4: ", cols, " features are not a multiple of 16 (the NVFP4 block)");
    check(reinterpret_cast<uintptr_t>(x.raw()) % 16 == 0, "quantize_fp4: x must be 16-byte aligned");
    check(!input_scale || (std::isfinite(*input_scale) && *input_scale > 0.0f), "quantize_fp4: input_scale ",
          input_scale.value_or(0.0f), " must be finite and positive");
    Fp4Activations a{empty({rows, cols / 2}, DType::U8), empty({fp4_scale_bytes(rows, cols / 16)}, DType::U8),
                     empty({4}, DType::F32)};
    cuda::launch_quantize_nvfp4(static_cast<const cuda::bf16*>(x.raw()), static_cast<uint8_t*>(a.codes.raw()),
                                static_cast<uint8_t*>(a.scales.raw()), static_cast<float*>(a.scalars.raw()), rows, cols,
                                !input_scale, input_scale.value_or(0.0f), alpha_factor, stream());
    return a;
}

}  // namespace flux2
