// The sampler's state on the device: upload_state, state_into and the flow-matching Euler update. The latents stay
// F32 on the device for a whole generation, so a step neither uploads them nor downloads its velocity.
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_utils.cuh"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {
namespace cuda {

namespace {
constexpr int kThreads = 256;

// __fadd_rn / __fmul_rn keep nvcc from fusing a multiply and an add: the host loop rounds each operation.
__global__ void euler_update_kernel(float* x, const bf16* v, const bf16* v_neg, float guidance, float dt, int64_t n) {
    for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        float vi = __bfloat162float(v[i]);
        if (v_neg) {
            const float ni = __bfloat162float(v_neg[i]);
            vi = __fadd_rn(ni, __fmul_rn(guidance, __fadd_rn(vi, -ni)));
        }
        x[i] = __fadd_rn(x[i], __fmul_rn(dt, vi));
    }
}
}  // namespace

void launch_euler_update(float* x, const bf16* v, const bf16* v_neg, float guidance, float dt, int64_t n,
                         cudaStream_t stream) {
    if (n == 0) return;
    euler_update_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(x, v, v_neg, guidance, dt, n);
    FLUX2_CUDA_CHECK_LAUNCH("euler_update_kernel");
}

}  // namespace cuda

namespace {
void expect_device_f32(const Tensor& t, const char* op, const char* what) {
    check(t.device() == Device::cuda && t.dtype() == DType::F32, "cuda backend: ", op, " expects ", what,
          " as an F32 device tensor (Backend::upload_state), got ", dtype_name(t.dtype()),
          t.device() == Device::cpu ? " on the host" : " on the device");
}
}  // namespace

Tensor CudaBackend::upload_state(const Tensor& host_f32) {
    FLUX2_PROFILE_OP("upload_state");
    check(host_f32.device() == Device::cpu && host_f32.dtype() == DType::F32,
          "cuda backend: upload_state expects a host F32 tensor, got ", dtype_name(host_f32.dtype()));
    Tensor out = empty(host_f32.shape(), DType::F32);
    if (host_f32.numel() == 0) return out;
    // From pageable memory cudaMemcpyAsync returns once the source is staged, so the host tensor may go away.
    FLUX2_CUDA_CHECK(cudaMemcpyAsync(out.raw(), host_f32.raw(), host_f32.nbytes(), cudaMemcpyHostToDevice, stream()));
    return out;
}

void CudaBackend::state_into(const Tensor& state, Tensor& dst) {
    FLUX2_PROFILE_OP("state_into");
    expect_device_f32(state, "state_into", "the state");
    expect_device_bf16(dst, "state_into", "dst");
    check(state.shape() == dst.shape(), "cuda backend: state_into of ", shape_str(state.shape()), " into ",
          shape_str(dst.shape()));
    cuda::launch_f32_to_bf16(static_cast<const float*>(state.raw()), static_cast<cuda::bf16*>(dst.raw()), dst.numel(),
                             stream());
}

void CudaBackend::euler_update(Tensor& x, const Tensor& v, const Tensor* v_neg, float guidance, float dt) {
    FLUX2_PROFILE_OP("euler_update");
    expect_device_f32(x, "euler_update", "the latents");
    expect_device_bf16(v, "euler_update", "the velocity");
    check(x.shape() == v.shape(), "cuda backend: euler_update: latents ", shape_str(x.shape()), " and velocity ",
          shape_str(v.shape()), " differ in shape");
    const cuda::bf16* neg = nullptr;
    if (v_neg) {
        expect_device_bf16(*v_neg, "euler_update", "the unconditional velocity");
        check(v_neg->shape() == x.shape(), "cuda backend: euler_update: latents ", shape_str(x.shape()),
              " and unconditional velocity ", shape_str(v_neg->shape()), " differ in shape");
        neg = static_cast<const cuda::bf16*>(v_neg->raw());
    }
    cuda::launch_euler_update(static_cast<float*>(x.raw()), static_cast<const cuda::bf16*>(v.raw()), neg, guidance, dt,
                              x.numel(), stream());
}

}  // namespace flux2
