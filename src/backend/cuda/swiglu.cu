// swiglu: [rows, 2M] -> [rows, M], y = silu(x[:, :M]) * x[:, M:] (the FLUX.2 gated MLP). swiglu_for writes the
// E4M3 input of an FP8 GEMM instead (fused per-token quantization); swiglu_beside_for does so for the single
// block's [attn | mlp] rows, whose per-token scale spans both parts.
#include <algorithm>

#include "backend/cuda/attention_fp8.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/fp8_utils.cuh"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;

// One thread per W outputs; m_vec = M / W. Rows of x start every x_row elements, rows of y every y_row.
template <int W>
__global__ void swiglu_kernel(const bf16* x, int64_t x_row, bf16* y, int64_t y_row, int64_t rows, int64_t m_vec) {
    const int64_t n = rows * m_vec, m = m_vec * W;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t r = i / m_vec, j = (i % m_vec) * W;
        float gate[W], up[W];
        load_bf16<W>(x + r * x_row + j, gate);
        load_bf16<W>(x + r * x_row + m + j, up);
#pragma unroll
        for (int k = 0; k < W; ++k) gate[k] = silu(gate[k]) * up[k];
        store_bf16<W>(y + r * y_row + j, gate);
    }
}
// One CTA per row, E4M3 output for the next FP8 GEMM, for rows too wide for swiglu_beside_fp8_kernel's shared
// memory: a pass for the amax of the BF16-rounded products, a pass writing their codes.
template <int W>
__global__ void swiglu_fp8_kernel(const bf16* x, int64_t x_row, E4m3Rows out, int64_t m) {
    const int64_t r = blockIdx.x, step = int64_t(blockDim.x) * W;
    const bf16* xr = x + r * x_row;
    auto product = [&](int64_t j, float(&v)[W]) {
        float up[W];
        load_bf16<W>(xr + j, v);
        load_bf16<W>(xr + m + j, up);
#pragma unroll
        for (int k = 0; k < W; ++k) v[k] = round_to_bf16(silu(v[k]) * up[k]);
    };
    float amax = 0.0f;
    for (int64_t j = threadIdx.x * W; j < m; j += step) {
        float v[W];
        product(j, v);
#pragma unroll
        for (int k = 0; k < W; ++k) amax = fmaxf(amax, fabsf(v[k]));
    }
    const float s = e4m3_row_scale(block_max(amax), out.headroom);
    if (threadIdx.x == 0) out.scales[r] = s;
    for (int64_t j = threadIdx.x * W; j < m; j += step) {
        float v[W];
        product(j, v);
        store_e4m3<W>(out.q + r * out.ld + j, v, s);
    }
}
// Where the attention part of the single block's row comes from: the BF16 output as stored, or (FP8 attention) its
// E4M3 codes times the output's descale, rounded to BF16 as the BF16 copy would hold them, so both give the same row.
struct Bf16Attention {
    const bf16* a;
    int64_t a_row;
    template <int W>
    __device__ void load(int64_t r, int64_t j, float (&v)[W]) const {
        load_bf16<W>(a + r * a_row + j, v);
    }
};
struct E4m3Attention {
    const uint8_t* a8;  // packed rows of ca codes
    const float* descale;
    int64_t a_row;
    template <int W>
    __device__ void load(int64_t r, int64_t j, float (&v)[W]) const {
        alignas(8) uint8_t c[W];
        if constexpr (W == 8) {
            *reinterpret_cast<uint2*>(c) = *reinterpret_cast<const uint2*>(a8 + r * a_row + j);
        } else {
#pragma unroll
            for (int k = 0; k < W; ++k) c[k] = a8[r * a_row + j + k];
        }
        const float d = *descale;
#pragma unroll
        for (int k = 0; k < W; ++k) v[k] = round_to_bf16(e4m3_to_float(c[k]) * d);
    }
};

// One CTA per row of the single block's output-projection input [attn | swiglu(gate, up)], E4M3 per token: the
// row's BF16 values (the attention output as stored, the products rounded as swiglu stores them) are gathered in
// shared memory while its amax is found, then written as codes. Same codes and scale as swiglu_into followed by
// the standalone quantizer, without the BF16 MLP half going to memory and back.
template <int W, class Attention>
__global__ void swiglu_beside_fp8_kernel(Attention attn, int64_t ca, const bf16* x, int64_t x_row, int64_t m,
                                         E4m3Rows out) {
    extern __shared__ __align__(16) unsigned char swiglu_beside_smem[];
    bf16* row = reinterpret_cast<bf16*>(swiglu_beside_smem);
    const int64_t r = blockIdx.x, width = ca + m, step = int64_t(blockDim.x) * W;
    const bf16* xr = x + r * x_row;
    float amax = 0.0f;
    for (int64_t j = threadIdx.x * W; j < ca; j += step) {
        float v[W];
        attn.template load<W>(r, j, v);
#pragma unroll
        for (int k = 0; k < W; ++k) amax = fmaxf(amax, fabsf(v[k]));
        store_bf16<W>(row + j, v);
    }
#pragma unroll 4
    for (int64_t j = threadIdx.x * W; j < m; j += step) {
        float v[W], up[W];
        load_bf16<W>(xr + j, v);
        load_bf16<W>(xr + m + j, up);
#pragma unroll
        for (int k = 0; k < W; ++k) {
            v[k] = round_to_bf16(silu(v[k]) * up[k]);
            amax = fmaxf(amax, fabsf(v[k]));
        }
        store_bf16<W>(row + ca + j, v);
    }
    // block_max's barriers also publish the shared row
    const float s = e4m3_row_scale(block_max(amax), out.headroom);
    if (threadIdx.x == 0) out.scales[r] = s;
    for (int64_t j = threadIdx.x * W; j < width; j += step) {
        float v[W];
        load_bf16<W>(row + j, v);
        store_e4m3<W>(out.q + r * out.ld + j, v, s);
    }
}

template <int W, class Attention>
void launch_swiglu_beside_fp8_width(Attention attn, int64_t ca, const bf16* x, int64_t x_row, int64_t m, E4m3Rows out,
                                    int64_t rows, cudaStream_t stream) {
    allow_dynamic_shared_memory(reinterpret_cast<const void*>(swiglu_beside_fp8_kernel<W, Attention>),
                                static_cast<int>(kSwigluBesideMaxRowBytes));
    // Up to 512 threads a row (row_threads stops at 256): with four such CTAs an SM keeps enough loads in flight.
    const size_t smem = static_cast<size_t>(ca + m) * sizeof(bf16);
    const int threads = static_cast<int>(std::min<int64_t>(512, ((ca + m) / W + 31) / 32 * 32));
    swiglu_beside_fp8_kernel<W><<<rows, threads, smem, stream>>>(attn, ca, x, x_row, m, out);
}

// Checks the row fits and picks 16-byte vectors where every row, both parts and the attention source allow.
template <class Attention>
void launch_swiglu_beside(Attention attn, bool attention_aligned, int64_t ca, const bf16* x, int64_t x_row, int64_t m,
                          E4m3Rows out, int64_t rows, cudaStream_t stream) {
    check(static_cast<size_t>(ca + m) * sizeof(bf16) <= kSwigluBesideMaxRowBytes, "swiglu beside attention: rows of ",
          ca + m, " values exceed the kernel's shared-memory row (", kSwigluBesideMaxRowBytes / sizeof(bf16), ")");
    if (rows == 0) return;
    const bool aligned = attention_aligned && reinterpret_cast<uintptr_t>(x) % 16 == 0 && x_row % kVec == 0 &&
                         ca % kVec == 0 && m % kVec == 0 && out.ld % kVec == 0;
    if (aligned) {
        launch_swiglu_beside_fp8_width<kVec>(attn, ca, x, x_row, m, out, rows, stream);
    } else {
        launch_swiglu_beside_fp8_width<1>(attn, ca, x, x_row, m, out, rows, stream);
    }
    FLUX2_CUDA_CHECK_LAUNCH("swiglu_beside_fp8_kernel");
}
}  // namespace

void launch_swiglu_beside_fp8(const bf16* a, int64_t a_row, int64_t ca, const bf16* x, int64_t x_row, int64_t m,
                              E4m3Rows out, int64_t rows, cudaStream_t stream) {
    const bool aligned = reinterpret_cast<uintptr_t>(a) % 16 == 0 && a_row % kVec == 0;
    launch_swiglu_beside(Bf16Attention{a, a_row}, aligned, ca, x, x_row, m, out, rows, stream);
}

void launch_swiglu_beside_fp8_e4m3(const uint8_t* a8, const float* descale, int64_t ca, const bf16* x, int64_t x_row,
                                   int64_t m, E4m3Rows out, int64_t rows, cudaStream_t stream) {
    launch_swiglu_beside(E4m3Attention{a8, descale, ca}, reinterpret_cast<uintptr_t>(a8) % 8 == 0, ca, x, x_row, m, out,
                         rows, stream);
}

void launch_swiglu_fp8(const bf16* x, int64_t x_row, E4m3Rows out, int64_t rows, int64_t m, cudaStream_t stream) {
    if (rows == 0 || m == 0) return;
    // A row that fits in shared memory is read once: the [attn | mlp] kernel with no attention part. Wider rows take
    // two passes over x, one for the amax and one for the codes.
    if (static_cast<size_t>(m) * sizeof(bf16) <= kSwigluBesideMaxRowBytes) {
        launch_swiglu_beside(Bf16Attention{nullptr, 0}, true, 0, x, x_row, m, out, rows, stream);
        return;
    }
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && x_row % kVec == 0 && out.ld % kVec == 0;
    if (m % kVec == 0 && aligned) {
        swiglu_fp8_kernel<kVec><<<rows, row_threads(m / kVec), 0, stream>>>(x, x_row, out, m);
    } else {
        swiglu_fp8_kernel<1><<<rows, row_threads(m), 0, stream>>>(x, x_row, out, m);
    }
    FLUX2_CUDA_CHECK_LAUNCH("swiglu_fp8_kernel");
}

void launch_swiglu_strided(const bf16* x, int64_t x_row, bf16* y, int64_t y_row, int64_t rows, int64_t m,
                           cudaStream_t stream) {
    if (rows == 0 || m == 0) return;
    // 16-byte vectors need every row and both halves to start on a 16-byte boundary.
    const bool aligned = reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(y) % 16 == 0 &&
                         x_row % kVec == 0 && y_row % kVec == 0;
    if (m % kVec == 0 && aligned) {
        swiglu_kernel<kVec>
            <<<grid_for(rows * (m / kVec), kThreads), kThreads, 0, stream>>>(x, x_row, y, y_row, rows, m / kVec);
    } else {
        swiglu_kernel<1><<<grid_for(rows * m, kThreads), kThreads, 0, stream>>>(x, x_row, y, y_row, rows, m);
    }
    FLUX2_CUDA_CHECK_LAUNCH("swiglu_kernel");
}

void launch_swiglu(const bf16* x, bf16* y, int64_t rows, int64_t m, cudaStream_t stream) {
    launch_swiglu_strided(x, 2 * m, y, m, rows, m, stream);
}

}  // namespace cuda

namespace {
// Checks x [..., 2M] and returns the output shape [..., M].
Shape swiglu_shape(const Tensor& x) {
    expect_device_bf16(x, "swiglu", "x");
    const int64_t two_m = x.dim(-1);
    check(two_m % 2 == 0, "swiglu: last dim ", two_m, " of ", shape_str(x.shape()), " is odd");
    Shape out_shape = x.shape();
    out_shape.back() = two_m / 2;
    return out_shape;
}
}  // namespace

Tensor CudaBackend::swiglu(const Tensor& x) {
    FLUX2_PROFILE_OP("swiglu");
    Tensor y = empty(swiglu_shape(x), DType::BF16);
    const int64_t m = y.dim(-1), rows = m ? y.numel() / m : 0;
    cuda::launch_swiglu(static_cast<const cuda::bf16*>(x.raw()), static_cast<cuda::bf16*>(y.raw()), rows, m, stream());
    return y;
}

Tensor CudaBackend::swiglu_for(const LinearWeight& next, const Tensor& x) {
    if (!takes_fp8_input(next)) return swiglu(x);
    FLUX2_PROFILE_OP("swiglu -> fp8");
    const Shape shape = swiglu_shape(x);
    const int64_t ld = fp8_input_width(next);
    Tensor q = quantized_activations(shape, ld);
    const int64_t m = shape.back(), rows = m ? shape_numel(shape) / m : 0;
    cuda::launch_swiglu_fp8(static_cast<const cuda::bf16*>(x.raw()), 2 * m, input_rows(next, q), rows, m, stream());
    return q;
}

}  // namespace flux2

namespace flux2 {

Tensor CudaBackend::swiglu_beside_for(const LinearWeight& next, Tensor& out, const Tensor& x, int64_t col, int64_t m) {
    if (out.dtype() == DType::F8_E4M3) {
        // attention_beside_for's E4M3 attention output [B, L, H, Dh]: the row quantizer reads its codes.
        check(out.ndim() == 4 && out.device() == Device::cuda, "swiglu_beside_for: E4M3 attention ",
              shape_str(out.shape()), " is not attention_beside_for's");
        const int64_t ca = out.dim(2) * out.dim(3), rows = out.dim(0) * out.dim(1);
        check(quantizes_beside(next, ca + m), "swiglu_beside_for: E4M3 attention made for another layer than ",
              next.name);
        check_swiglu_source(x, rows, col, m);
        FLUX2_PROFILE_OP("swiglu beside attention (e4m3) -> fp8");
        const auto* codes = static_cast<const uint8_t*>(out.raw());
        Tensor q = quantized_activations({out.dim(0), out.dim(1), ca + m}, fp8_input_width(next));
        cuda::launch_swiglu_beside_fp8_e4m3(codes, cuda::Fp8Attention::e4m3_output_descale(codes, out.numel()), ca,
                                            static_cast<const cuda::bf16*>(x.raw()) + col, x.dim(-1), m,
                                            input_rows(next, q), rows, stream());
        return q;
    }
    if (!quantizes_beside(next, out.dim(-1))) return Backend::swiglu_beside_for(next, out, x, col, m);
    FLUX2_PROFILE_OP("swiglu beside attention -> fp8");
    expect_device_bf16(out, "swiglu_beside_for", "out");
    const int64_t width = out.dim(-1), ca = width - m, rows = width ? out.numel() / width : 0;
    check(ca >= 0, "swiglu_beside_for: out ", shape_str(out.shape()), " is narrower than its MLP part of ", m);
    check_swiglu_source(x, rows, col, m);
    const int64_t ld = fp8_input_width(next);
    Tensor q = quantized_activations(out.shape(), ld);
    cuda::launch_swiglu_beside_fp8(static_cast<const cuda::bf16*>(out.raw()), width, ca,
                                   static_cast<const cuda::bf16*>(x.raw()) + col, x.dim(-1), m, input_rows(next, q),
                                   rows, stream());
    return q;
}

bool CudaBackend::quantizes_beside(const LinearWeight& next, int64_t width) {
    return takes_fp8_input(next) && static_cast<size_t>(width) * sizeof(cuda::bf16) <= cuda::kSwigluBesideMaxRowBytes;
}

void CudaBackend::check_swiglu_source(const Tensor& x, int64_t rows, int64_t col, int64_t m) {
    expect_device_bf16(x, "swiglu_beside_for", "x");
    const int64_t x_row = x.dim(-1);
    check(col >= 0 && col + 2 * m <= x_row && x.numel() / x_row == rows, "swiglu_beside_for: ", rows,
          " rows with an MLP part of ", m, " do not fit x ", shape_str(x.shape()), " at column ", col);
}

}  // namespace flux2
