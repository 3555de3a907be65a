// CudaBackend::attention: shape checks, then cuDNN SDPA (attention_cudnn.cpp).
#include "backend/cuda/attention_cudnn.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/launchers.h"
#include "core/error.h"

namespace flux2 {

Tensor CudaBackend::attention(const Tensor& q, const Tensor& k, const Tensor& v) {
    FLUX2_PROFILE_OP("attention");
    expect_device_bf16(q, "attention", "q");
    expect_device_bf16(k, "attention", "k");
    expect_device_bf16(v, "attention", "v");
    check(q.ndim() == 4 && q.shape() == k.shape() && q.shape() == v.shape(),
          "attention: q, k, v must share one [B, L, H, Dh] shape, got ", shape_str(q.shape()), ", ",
          shape_str(k.shape()), ", ", shape_str(v.shape()));
    const int64_t B = q.dim(0), L = q.dim(1), H = q.dim(2), Dh = q.dim(3);
    Tensor out = empty({B, L, H * Dh}, DType::BF16);
    sdpa_->run(static_cast<const cuda::bf16*>(q.raw()), static_cast<const cuda::bf16*>(k.raw()),
               static_cast<const cuda::bf16*>(v.raw()), static_cast<cuda::bf16*>(out.raw()), B, L, H, Dh);
    return out;
}

}  // namespace flux2
