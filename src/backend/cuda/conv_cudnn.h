#pragma once
// 2-D convolution through cuDNN (cudnn-frontend graph API, conv_fprop): BF16 in and out, fp32 accumulation, no
// bias (the caller adds it). One execution plan per shape and layout, built on first use and cached. The VAE's
// convolutions run here; before, im2col + GEMM wrote a patch matrix of Cin*kh*kw values per output pixel.
#include <cuda_bf16.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "backend/cuda/cudnn_handle.h"
#include "backend/cuda/device_memory.h"

namespace flux2::cuda {

struct ConvShape {
    int64_t B, cin, H, W, cout, kh, kw;
    int stride, padding;
    int64_t Ho() const { return (H + 2 * padding - kh) / stride + 1; }
    int64_t Wo() const { return (W + 2 * padding - kw) / stride + 1; }
};

class CudnnConv {
public:
    // NCHW: x [B, Cin, H, W], w [Cout, Cin, kh, kw], y [B, Cout, Ho, Wo], as our tensors are.
    // NHWC: x [B, H, W, Cin], w [Cout, kh, kw, Cin], y [B, Ho, Wo, Cout], the layout of cuDNN's fastest engines.
    enum class Layout { nchw, nhwc };

    explicit CudnnConv(std::shared_ptr<Stream> stream);
    ~CudnnConv();
    CudnnConv(const CudnnConv&) = delete;
    CudnnConv& operator=(const CudnnConv&) = delete;

    // Whether cuDNN has an engine for this shape in this layout (builds and caches the plan).
    bool supports(const ConvShape& s, Layout layout);
    // y = conv(x, w); fails with the shape in the message where cuDNN has no engine (ask supports() first).
    void run(const __nv_bfloat16* x, const __nv_bfloat16* w, __nv_bfloat16* y, const ConvShape& s, Layout layout);
    // Frees the workspace, the largest any plan run so far asked for (freed in stream order); the next run
    // allocates what it needs again. The VAE's convolutions at 1024² may ask for a GB, which would otherwise stay
    // held through the next request's encode and steps (CudaBackend::release_cached_memory).
    void release_workspace();

private:
    struct Plan;
    using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, int>;
    Plan& plan(const ConvShape& s, Layout layout);

    std::shared_ptr<Stream> stream_;
    CudnnHandle handle_;
    std::shared_ptr<void> workspace_;
    int64_t workspace_bytes_ = 0;
    std::map<Key, std::unique_ptr<Plan>> plans_;  // unsupported shapes hold a plan without a graph
};

}  // namespace flux2::cuda
