// CpuBackend::linear: every weight format is dequantized once to exact fp32 and multiplied with OpenBLAS.
// NVFP4 layers can additionally fake-quantize their input (W4A4), reproducing Blackwell FP4 GEMM numerics.
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "quant/nvfp4.h"

namespace flux2 {

namespace {
const std::vector<float>& prepared_f32(const LinearWeight& w, uint64_t owner) {
    if (w.prepared_owner != owner || !w.prepared) {
        w.prepared = std::make_shared<std::vector<float>>(dequantize(w));
        w.prepared_owner = owner;
    }
    return *static_cast<const std::vector<float>*>(w.prepared.get());
}

// y [m, count] += (x A^T) B^T for the branch's outputs [begin, begin + count), in fp32, from the layer's unquantized
// input: the branch is a float GEMM pair beside whatever the base weight's format is (a W4A4 base quantizes only its
// own GEMM's input).
void add_lora_branch(const float* x, const LoraBranch& lora, int64_t m, int64_t begin, int64_t count, float* y) {
    std::vector<float> t(static_cast<size_t>(m * lora.rank));
    cpu_gemm_nt(x, lora.a.data(), t.data(), m, lora.rank, lora.in_features);
    cpu_gemm_nt(t.data(), lora.b.data() + begin * lora.rank, y, m, count, lora.rank, /*accumulate=*/true);
}
}  // namespace

Tensor CpuBackend::linear(const Tensor& x, const LinearWeight& w) { return linear_rows(x, w, 0, w.out_features); }

Tensor CpuBackend::linear_rows(const Tensor& x, const LinearWeight& w, int64_t begin, int64_t count) {
    w.check_rows(begin, count);
    check(x.ndim() >= 1 && x.dim(-1) == w.in_features, "linear ", w.name, ": input ", shape_str(x.shape()),
          " does not end in in_features ", w.in_features);
    check(!w.lora || (w.lora->in_features == w.in_features && w.lora->out_features == w.out_features), "linear ",
          w.name, ": LoRA branch [", w.lora ? w.lora->out_features : 0, ", ", w.lora ? w.lora->in_features : 0,
          "] does not match the layer [", w.out_features, ", ", w.in_features, "]");
    const int64_t m = x.numel() / w.in_features;
    Shape out_shape = x.shape();
    out_shape.back() = count;
    Tensor y = Tensor::zeros(out_shape);
    const std::vector<float>& weight = prepared_f32(w, instance_id());

    const float* input = x.f32();
    Tensor quantized_input;
    std::string path;
    switch (w.format) {
        case WeightFormat::dense:
            path = str(w.format_label(), "->f32");
            break;
        case WeightFormat::fp8:
            path = "fp8->w8a16(f32)";
            break;
        case WeightFormat::nvfp4:
            if (options_.nvfp4_activations == Nvfp4Activations::w4a4) {
                quantized_input = x.clone();
                float* q = quantized_input.f32();
                float scale = w.nvfp4.input_scale ? *w.nvfp4.input_scale : dynamic_nvfp4_scale(q, x.numel());
                fake_quantize_nvfp4(q, m, w.in_features, scale);
                input = q;
                path = w.nvfp4.input_scale ? "nvfp4->w4a4(static input_scale)" : "nvfp4->w4a4(dynamic input scale)";
            } else {
                path = "nvfp4->w4a16(f32)";
            }
            break;
    }
    if (w.lora) path += str(" + lora r", w.lora->rank);
    if (begin == 0) record_path(w, path);
    cpu_gemm_nt(input, weight.data() + begin * w.in_features, y.f32(), m, count, w.in_features);
    if (w.lora) add_lora_branch(x.f32(), *w.lora, m, begin, count, y.f32());
    return y;
}

}  // namespace flux2
