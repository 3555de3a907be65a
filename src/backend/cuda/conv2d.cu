// conv2d: cuDNN (conv_cudnn.h) where it has an engine for the shape, else im2col + the BF16 cuBLASLt GEMM.
#include <algorithm>
#include <cstdlib>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/op_shapes.h"
#include "core/error.h"
#include "core/log.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;
constexpr int64_t kColumnBudget = int64_t(64) << 20;  // elements of one band's patch matrix (128 MB)

__global__ void im2col_kernel(const bf16* x, bf16* col, int64_t Cin, int64_t H, int64_t W, int64_t kh, int64_t kw,
                              int stride, int padding, int64_t Wo, int64_t row0, int64_t n) {
    const int64_t K = Cin * kh * kw;
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t p = i / K, k = i % K;
        const int64_t ci = k / (kh * kw), ky = (k / kw) % kh, kx = k % kw;
        const int64_t oy = row0 + p / Wo, ox = p % Wo;
        const int64_t iy = oy * stride - padding + ky, ix = ox * stride - padding + kx;
        const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
        col[i] = inside ? x[(ci * H + iy) * W + ix] : __float2bfloat16_rn(0.0f);
    }
}
}  // namespace

void launch_im2col(const bf16* x, bf16* col, int64_t Cin, int64_t H, int64_t W, int64_t kh, int64_t kw, int stride,
                   int padding, int64_t Wo, int64_t row0, int64_t rows, cudaStream_t stream) {
    const int64_t n = rows * Wo * Cin * kh * kw;
    if (n == 0) return;
    im2col_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, col, Cin, H, W, kh, kw, stride, padding, Wo, row0,
                                                                  n);
    FLUX2_CUDA_CHECK_LAUNCH("im2col_kernel");
}

}  // namespace cuda

Tensor CudaBackend::conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding) {
    FLUX2_PROFILE_OP("conv2d");
    const char* op = "conv2d";
    expect_device_bf16(x, op, "x");
    expect_device_bf16(weight, op, "weight");
    expect_device_bf16(bias, op, "bias");
    const Conv2dShape s = conv2d_shape(x, weight, bias, stride, padding);
    const cuda::ConvShape cs{s.B, s.cin, s.H, s.W, s.cout, s.kh, s.kw, stride, padding};
    using Layout = cuda::CudnnConv::Layout;
    // FLUX2_CONV=cudnn-nchw|cudnn-nhwc|im2col forces one path (benchmarks, tests); by default the first that cuDNN
    // supports of NCHW (our layout) and NHWC, else im2col.
    const char* env = std::getenv("FLUX2_CONV");
    std::string path = env ? env : "";
    check(path.empty() || path == "cudnn-nchw" || path == "cudnn-nhwc" || path == "im2col",
          "FLUX2_CONV must be cudnn-nchw, cudnn-nhwc or im2col, got '", path, "'");
    if (path.empty())
        path = conv_->supports(cs, Layout::nchw)   ? "cudnn-nchw"
               : conv_->supports(cs, Layout::nhwc) ? "cudnn-nhwc"
                                                   : "im2col";
    const std::string key = str(s.cin, "x", s.H, "x", s.W, "->", s.cout, " k", s.kh, " s", stride);
    if (conv_paths_.emplace(key, path).second) log_debug("conv2d ", key, ": ", path);

    Tensor y = empty({s.B, s.cout, s.Ho, s.Wo}, DType::BF16);
    auto* py = static_cast<cuda::bf16*>(y.raw());
    const auto* pb = static_cast<const cuda::bf16*>(bias.raw());
    if (path == "cudnn-nchw") {
        conv_->run(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(weight.raw()), py, cs,
                   Layout::nchw);
        cuda::launch_add_channel_bias(py, pb, s.B * s.cout, s.cout, s.P, stream());
    } else if (path == "cudnn-nhwc") {
        // [B, Cin, H*W] -> [B, H*W, Cin]; the weight [Cout, Cin, kh*kw] -> [Cout, kh*kw, Cin]; the result
        // [B, P, Cout] back to [B, Cout, P] with the bias in the same pass.
        Tensor xt = transpose_last2(x.reshape({s.B, s.cin, s.H * s.W}));
        Tensor wt = transpose_last2(weight.reshape({s.cout, s.cin, s.kh * s.kw}));
        Tensor yt = empty({s.B, s.P, s.cout}, DType::BF16);
        conv_->run(static_cast<const cuda::bf16*>(xt.raw()), static_cast<const cuda::bf16*>(wt.raw()),
                   static_cast<cuda::bf16*>(yt.raw()), cs, Layout::nhwc);
        cuda::launch_transpose_last2(static_cast<const cuda::bf16*>(yt.raw()), pb, py, s.B, s.P, s.cout, stream());
    } else {
        conv2d_im2col(x, weight, bias, s, stride, padding, y);
    }
    return y;
}

// conv2d as im2col + the BF16 cuBLASLt GEMM: for each image and band of output rows, the patch matrix
// col [pixels, Cin*kh*kw] times the weight [Cout, Cin*kh*kw]^T gives [pixels, Cout]; one transpose with the bias
// then writes NCHW. Bands bound the patch matrix to kColumnBudget elements (a 1024^2 VAE layer would need GBs).
void CudaBackend::conv2d_im2col(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dShape& s,
                                int stride, int padding, Tensor& y) {
    const int64_t B = s.B, cin = s.cin, H = s.H, W = s.W, cout = s.cout, kh = s.kh, kw = s.kw;
    const int64_t Ho = s.Ho, Wo = s.Wo, P = s.P, K = s.K;
    const int64_t band_rows = std::clamp<int64_t>(cuda::kColumnBudget / std::max<int64_t>(K * Wo, 1), 1, Ho);
    Tensor col = empty({band_rows * Wo, K}, DType::BF16);
    Tensor pixels_by_channel = empty({P, cout}, DType::BF16);
    const auto* px = static_cast<const cuda::bf16*>(x.raw());
    const auto* pw = static_cast<const cuda::bf16*>(weight.raw());
    auto* pc = static_cast<cuda::bf16*>(col.raw());
    auto* pt = static_cast<cuda::bf16*>(pixels_by_channel.raw());
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t r0 = 0; r0 < Ho; r0 += band_rows) {
            const int64_t rows = std::min(band_rows, Ho - r0);
            cuda::launch_im2col(px + b * cin * H * W, pc, cin, H, W, kh, kw, stride, padding, Wo, r0, rows, stream());
            gemm_->bf16(pc, pw, pt + r0 * Wo * cout, rows * Wo, cout, K);
        }
        cuda::launch_transpose_last2(pt, static_cast<const cuda::bf16*>(bias.raw()),
                                     static_cast<cuda::bf16*>(y.raw()) + b * cout * P, 1, P, cout, stream());
    }
}

}  // namespace flux2
