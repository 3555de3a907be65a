// F32 <-> BF16 conversion kernels (round to nearest even, as f32_to_bf16 on the host).
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"

namespace flux2::cuda {

namespace {
constexpr int kThreads = 256;

__global__ void f32_to_bf16_kernel(const float* in, bf16* out, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __float2bfloat16_rn(in[i]);
}

__global__ void bf16_to_f32_kernel(const bf16* in, float* out, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        out[i] = __bfloat162float(in[i]);
}
}  // namespace

cudaError_t kernel_image_status() {
    cudaFuncAttributes attributes{};
    return cudaFuncGetAttributes(&attributes, f32_to_bf16_kernel);
}

void launch_f32_to_bf16(const float* in, bf16* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    f32_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(in, out, n);
    FLUX2_CUDA_CHECK_LAUNCH("f32_to_bf16_kernel");
}

void launch_bf16_to_f32(const bf16* in, float* out, int64_t n, cudaStream_t stream) {
    if (n == 0) return;
    bf16_to_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(in, out, n);
    FLUX2_CUDA_CHECK_LAUNCH("bf16_to_f32_kernel");
}

}  // namespace flux2::cuda
