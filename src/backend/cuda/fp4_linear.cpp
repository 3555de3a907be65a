// The fp4 precision of CudaBackend::linear (Blackwell): NVFP4 weights are brought once into the GEMM layout
// (quant/nvfp4_gemm_layout.h: nibble swap + 128x4 scale swizzle, on the host, then uploaded), activations are
// quantized to NVFP4 per call (quantize_fp4.cu) and multiplied by cuBLASLt's block-scaled FP4 GEMM.
#include <cuda_bf16.h>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_fp4_cublaslt.h"
#include "backend/cuda/launchers.h"
#include "core/error.h"
#include "quant/nvfp4_gemm_layout.h"

namespace flux2 {

std::shared_ptr<const Fp4PreparedWeight> CudaBackend::prepare_fp4(const LinearWeight& w) {
    check(w.format == WeightFormat::nvfp4, "linear ", w.name, ": the fp4 path takes NVFP4 weights, got ",
          w.format_label());
    check(w.in_features % kFp4KMultiple == 0, "linear ", w.name, ": the fp4 GEMM needs in_features divisible by ",
          kFp4KMultiple, ", got ", w.in_features);
    const Nvfp4GemmWeight g = prepare_nvfp4_gemm_weight(w.nvfp4, w.out_features, w.in_features, w.name);
    auto p = std::make_shared<Fp4PreparedWeight>();
    p->codes = empty({w.out_features, w.in_features / 2}, DType::U8);
    p->scales = empty({static_cast<int64_t>(g.scales.size())}, DType::U8);
    // From pageable memory cudaMemcpyAsync returns once the source is staged, so `g` may go away after it.
    FLUX2_CUDA_CHECK(cudaMemcpyAsync(p->codes.raw(), g.codes.data(), g.codes.size(), cudaMemcpyHostToDevice, stream()));
    FLUX2_CUDA_CHECK(
        cudaMemcpyAsync(p->scales.raw(), g.scales.data(), g.scales.size(), cudaMemcpyHostToDevice, stream()));
    p->weight_scale_2 = g.weight_scale_2;
    p->input_scale = w.nvfp4.input_scale;
    return p;
}

Tensor CudaBackend::linear_fp4(const Tensor& x, const Shape& out_shape, const Fp4PreparedWeight& w) {
    const int64_t n = w.codes.dim(0), k = w.codes.dim(1) * 2, m = x.numel() / k;
    if (!fp4_gemm_) fp4_gemm_ = std::make_unique<cuda::CublasLtFp4Gemm>(stream_);
    const Fp4Activations a = quantize_fp4(x, w.input_scale, w.weight_scale_2);
    Tensor y = empty(out_shape, DType::BF16);
    auto scope = profile_op([&] { return str("gemm fp4 ", m, "x", n, "x", k); }, 2.0 * m * n * k);
    fp4_gemm_->run(static_cast<const uint8_t*>(a.codes.raw()), static_cast<const uint8_t*>(a.scales.raw()),
                   static_cast<const uint8_t*>(w.codes.raw()), static_cast<const uint8_t*>(w.scales.raw()),
                   static_cast<const float*>(a.scalars.raw()), static_cast<cuda::bf16*>(y.raw()), m, n, k);
    return y;
}

}  // namespace flux2
