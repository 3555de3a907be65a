// CudaBackend::linear: prepares each layer's weight once on the device (kept in LinearWeight::prepared) and runs
// the BF16 or FP8 cuBLASLt GEMM. The path taken is recorded per layer (Backend::record_path).
#include <cuda_bf16.h>

#include <algorithm>

#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/launchers.h"
#include "backend/cuda/prepared_weights.h"
#include "core/error.h"
#include "quant/lora_fp8_tail.h"

namespace flux2 {

namespace {
using cuda::bf16;

// The largest E4M3 chunk of a weight kept as NVFP4 (gemm_fp4_resident).
constexpr int64_t kFp4ChunkBytes = int64_t{128} << 20;

void check_bytes(const LinearWeight& w, const char* what, size_t have, size_t want) {
    check(have == want, "linear ", w.name, ": ", what, " holds ", have, " bytes, expected ", want, " for [",
          w.out_features, ", ", w.in_features, "]");
}
}  // namespace

void CudaBackend::prepare_bf16(const LinearWeight& w, PreparedLinear& p, bool streamed) {
    const int64_t out = w.out_features, in = w.in_features, n = out * in;
    p.kind = CudaLinearPrecision::bf16;
    if (streamed) {
        // Only BF16 layers stream on this path (stream_sources): the buffer holds their bytes as they are.
        p.weight = streamed_views(w, {{out, in}}, DType::BF16)[0];
        p.path = str(w.format_label(), "(streamed)->bf16");
        return;
    }
    p.weight = empty({out, in}, DType::BF16);
    auto* dst = static_cast<bf16*>(p.weight.raw());
    auto upload_bytes = [&](const std::vector<uint8_t>& bytes, DType dtype, const Shape& shape) {
        Tensor t = empty(shape, dtype);
        upload_host(t.raw(), bytes.data(), bytes.size());
        return t;
    };
    switch (w.format) {
        case WeightFormat::dense: {
            const DType dt = w.dense.dtype;
            check(dt == DType::BF16 || dt == DType::F16 || dt == DType::F32, "linear ", w.name,
                  ": dense weights must be BF16, F16 or F32, got ", dtype_name(dt));
            check_bytes(w, "the dense weight", w.dense.bytes.size(), n * dtype_size(dt));
            if (dt == DType::BF16) {
                upload_host(dst, w.dense.bytes.data(), w.dense.bytes.size());
            } else {
                Tensor raw = upload_bytes(w.dense.bytes, dt, {out, in});
                if (dt == DType::F16) {
                    cuda::launch_f16_to_bf16(static_cast<const uint16_t*>(raw.raw()), dst, n, stream());
                } else {
                    cuda::launch_f32_to_bf16(static_cast<const float*>(raw.raw()), dst, n, stream());
                }
            }
            p.path = str(w.format_label(), "->bf16");
            break;
        }
        case WeightFormat::nvfp4: {
            Tensor codes = upload_bytes(w.nvfp4.codes, DType::U8, {out, in / 2});
            Tensor scales = upload_bytes(w.nvfp4.scales, DType::U8, {out, in / 16});
            cuda::launch_nvfp4_to_bf16(static_cast<const uint8_t*>(codes.raw()),
                                       static_cast<const uint8_t*>(scales.raw()), w.nvfp4.weight_scale_2, dst, out, in,
                                       stream());
            p.path = "nvfp4->bf16";
            break;
        }
        case WeightFormat::fp8: {
            p.path = "fp8->bf16";
            if (!w.fp8.row_scales.empty()) {
                // One scale per row (converted at load from 16-bit weights): widened on the host, once.
                const std::vector<float> values = dequantize(w);
                Tensor raw = empty({out, in}, DType::F32);
                // In stream order, like every upload here (the pool may hand out a block a queued kernel still
                // reads); from pageable memory the call returns once `values` is staged.
                FLUX2_CUDA_CHECK(cudaMemcpyAsync(raw.raw(), values.data(), values.size() * sizeof(float),
                                                 cudaMemcpyHostToDevice, stream()));
                cuda::launch_f32_to_bf16(static_cast<const float*>(raw.raw()), dst, n, stream());
                break;
            }
            Tensor codes = upload_bytes(w.fp8.codes, DType::U8, {out, in});
            cuda::launch_fp8_to_bf16(static_cast<const uint8_t*>(codes.raw()), w.fp8.scale, dst, n, stream());
            break;
        }
    }
}

std::string CudaBackend::fp8_label(const char* weight_scaling) const {
    return str("fp8(e4m3 ", weight_scaling, " x per-token", fast_fp8_accumulation_ ? ", fast accumulation" : "", ")");
}

void CudaBackend::prepare_fp8(const LinearWeight& w, PreparedLinear& p, bool streamed) {
    const int64_t out = w.out_features, in = w.in_features;
    p.kind = CudaLinearPrecision::fp8;
    p.weight = streamed && w.format == WeightFormat::fp8 ? streamed_views(w, {{out, in}}, DType::F8_E4M3)[0]
                                                         : empty({out, in}, DType::F8_E4M3);
    p.scales = empty({out}, DType::F32);
    auto* codes_out = static_cast<uint8_t*>(p.weight.raw());
    auto* scales_out = static_cast<float*>(p.scales.raw());
    if (w.format == WeightFormat::nvfp4) {
        Tensor codes = empty({out, in / 2}, DType::U8), scales = empty({out, in / 16}, DType::U8);
        upload_host(codes.raw(), w.nvfp4.codes.data(), w.nvfp4.codes.size());
        upload_host(scales.raw(), w.nvfp4.scales.data(), w.nvfp4.scales.size());
        cuda::launch_nvfp4_to_fp8_rows(static_cast<const uint8_t*>(codes.raw()),
                                       static_cast<const uint8_t*>(scales.raw()), w.nvfp4.weight_scale_2, codes_out,
                                       scales_out, out, in, stream());
        p.path = "nvfp4->" + fp8_label("per-channel");
        uint8_t* e4m3_host = streamed ? streamed_.at(&w).e4m3_host : nullptr;
        if (e4m3_host) {
            // Streamed as these E4M3 codes: their host copy is made now, once; the GEMM reads them from the stream
            // buffer. The same codes and row scales as a resident layer's, so the same outputs.
            FLUX2_CUDA_CHECK(
                cudaMemcpyAsync(e4m3_host, codes_out, static_cast<size_t>(out * in), cudaMemcpyDeviceToHost, stream()));
            FLUX2_CUDA_CHECK(cudaStreamSynchronize(stream()));
            p.weight = streamed_views(w, {{out, in}}, DType::F8_E4M3)[0];
            p.path = "nvfp4(streamed as e4m3)->" + fp8_label("per-channel");
        } else if (streamed || fp4_resident_) {
            // Keep the 4-bit form and the row scales, converted before each GEMM; the E4M3 copy above only served to
            // compute those scales and is freed in stream order. A streamed layer's 4-bit form comes through its
            // stream buffer before each use instead of staying in the tensors uploaded here.
            if (streamed) {
                std::vector<Tensor> v = streamed_views(w, {{out, in / 2}, {out, in / 16}}, DType::U8);
                codes = v[0];
                scales = v[1];
            }
            p.fp4_codes = codes;
            p.fp4_block_scales = scales;
            p.fp4_scale_2 = w.nvfp4.weight_scale_2;
            p.weight = Tensor();
            p.path = str("nvfp4(", streamed ? "streamed" : "resident", ")->", fp8_label("per-channel"));
        }
    } else {
        // FP8 weights keep their codes (streamed ones get them through the buffer); a per-tensor scale becomes a
        // constant per-channel vector.
        if (!streamed) upload_host(codes_out, w.fp8.codes.data(), w.fp8.codes.size());
        const char* from = streamed ? "fp8(streamed)" : "fp8";
        if (w.fp8.row_scales.empty()) {
            cuda::launch_fill_f32(scales_out, w.fp8.scale, out, stream());
            p.path = str(from, "->", fp8_label("per-tensor"));
        } else {
            FLUX2_CUDA_CHECK(cudaMemcpyAsync(scales_out, w.fp8.row_scales.data(), out * sizeof(float),
                                             cudaMemcpyHostToDevice, stream()));
            p.path = str(from, "->", fp8_label("per-channel"));
        }
    }
}

const CudaBackend::PreparedLinear& CudaBackend::prepare(const LinearWeight& w) {
    if (w.prepared && w.prepared_owner == instance_id()) return *static_cast<const PreparedLinear*>(w.prepared.get());
    const int64_t out = w.out_features, in = w.in_features;
    check(out > 0 && in > 0, "linear ", w.name, ": bad shape [", out, ", ", in, "]");
    if (w.format == WeightFormat::nvfp4) {
        check(in % 16 == 0, "linear ", w.name, ": NVFP4 needs in_features divisible by 16, got ", in);
        check_bytes(w, "the NVFP4 codes", w.nvfp4.codes.size(), out * in / 2);
        check_bytes(w, "the NVFP4 block scales", w.nvfp4.scales.size(), out * in / 16);
    } else if (w.format == WeightFormat::fp8) {
        check_bytes(w, "the FP8 codes", w.fp8.codes.size(), out * in);
        check(w.fp8.row_scales.empty() || static_cast<int64_t>(w.fp8.row_scales.size()) == out, "linear ", w.name, ": ",
              w.fp8.row_scales.size(), " FP8 row scales for ", out, " rows");
    }
    auto p = std::make_shared<PreparedLinear>();
    const bool streamed = streamed_.count(&w) > 0;  // --offload layers (layer_stream.cpp)
    // Dense layers stay BF16 (the checkpoint kept them unquantized on purpose); FP8 GEMMs need k % 16 == 0.
    const bool fp8 = precision_ == CudaLinearPrecision::fp8 && w.format != WeightFormat::dense && in % 16 == 0;
    // fp4: NVFP4 layers only (FP8 checkpoints and dense layers stay BF16); the GEMM needs k % 32 == 0.
    const bool fp4 =
        precision_ == CudaLinearPrecision::fp4 && w.format == WeightFormat::nvfp4 && in % kFp4KMultiple == 0;
    if (fp4) {
        p->kind = CudaLinearPrecision::fp4;
        p->fp4 = prepare_fp4(w);
        p->path = kFp4PathLabel;
    } else if (fp8) {
        prepare_fp8(w, *p, streamed);
    } else {
        prepare_bf16(w, *p, streamed);
        if (precision_ == CudaLinearPrecision::fp8 && w.format == WeightFormat::fp8)
            p->path += " (in_features not divisible by 16)";
        if (precision_ == CudaLinearPrecision::fp4 && w.format == WeightFormat::nvfp4)
            p->path += " (in_features not divisible by 32)";
    }
    p->out = out;
    p->in = in;
    w.prepared = p;
    w.prepared_owner = instance_id();
    return *p;
}

bool CudaBackend::takes_fp8_input(const LinearWeight& w) { return prepare(w).kind == CudaLinearPrecision::fp8; }

int64_t CudaBackend::fp8_input_width(const LinearWeight& w) {
    check(takes_fp8_input(w), "linear ", w.name, " runs ", prepare(w).path, ", which takes no E4M3 input");
    const PreparedLora* carried = carried_lora(w);
    return carried ? w.in_features + carried->rank : w.in_features;
}

float CudaBackend::fp8_input_headroom(const LinearWeight& w) { return carried_lora(w) ? kLoraFp8TailHeadroom : 1.0f; }

cuda::E4m3Rows CudaBackend::input_rows(const LinearWeight& next, const Tensor& q) {
    cuda::E4m3Rows rows = e4m3_rows(fp8_parts(q));
    rows.headroom = fp8_input_headroom(next);
    return rows;
}

const CudaBackend::PreparedLinear& CudaBackend::fp8_weight_for(const LinearWeight& w) {
    // prepare() hands out the shared prepared form as const; its layout is this function's to keep.
    auto& p = const_cast<PreparedLinear&>(prepare(w));
    const PreparedLora* carried = carried_lora(w);
    const std::shared_ptr<const void> want = carried ? w.lora->prepared : nullptr;
    const int64_t tail = carried ? carried->rank : 0;
    if (p.tail_of == want) return p;
    check(!recording(), "linear ", w.name, ": its LoRA branch changed while recording a CUDA graph");
    // A new [out, in + tail] copy: W's codes as they are, then B's (on stream order, so the old buffer is released
    // after the copy reads it); one layer's weight more at a time.
    const int64_t n = p.out, k = p.in, old_ld = k + p.tail, ld = k + tail;
    Tensor relaid = empty({n, ld}, DType::F8_E4M3);
    FLUX2_CUDA_CHECK(
        cudaMemcpy2DAsync(relaid.raw(), ld, p.weight.raw(), old_ld, k, n, cudaMemcpyDeviceToDevice, stream()));
    if (tail) {
        FLUX2_CUDA_CHECK(cudaMemcpy2DAsync(static_cast<uint8_t*>(relaid.raw()) + k, ld, carried->tail_codes.raw(), tail,
                                           tail, n, cudaMemcpyDeviceToDevice, stream()));
    }
    p.weight = relaid;
    p.tail = tail;
    p.tail_of = want;
    return p;
}

void CudaBackend::gemm_fp8_into(const Fp8Activations& x, const LinearWeight& w, Tensor& y, float beta,
                                const float* w_scales, int64_t begin) {
    const PreparedLinear& p = fp8_weight_for(w);
    const int64_t m = x.codes.dim(0), k = p.in + p.tail, n = y.dim(-1);
    check(p.kind == CudaLinearPrecision::fp8 && x.codes.dim(1) == k, "linear_fp8 ", w.name, ": weight [", p.out, ", ",
          p.in, "] with ", p.tail, " LoRA columns does not take rows of ", x.codes.dim(1), " codes");
    w.check_rows(begin, n);
    check(y.numel() == m * n, "linear_fp8 ", w.name, ": ", n, " output columns into ", shape_str(y.shape()), " for ", m,
          " tokens");
    const uint8_t* weight = static_cast<const uint8_t*>(p.weight.raw()) + begin * k;
    if (p.tail) {
        // t = x A^T, then its codes beside x's (lora_fp8_tail.h; a token whose t codes would not fit gets a larger
        // scale and its codes rescaled in place): the GEMM below runs the branch with the layer.
        carry_lora_codes(x, w);
    }
    const float* scales = w_scales ? w_scales : static_cast<const float*>(p.scales.raw()) + begin;
    if (p.fp4_codes.defined()) {
        gemm_fp4_resident(x, p, y, beta, scales, begin);
        return;
    }
    auto scope = profile_op([&] { return str("gemm fp8 ", m, "x", n, "x", k, beta != 0.0f ? " +residual" : ""); },
                            2.0 * m * n * k);
    gemm_->fp8(static_cast<const uint8_t*>(x.codes.raw()), static_cast<const float*>(x.scales.raw()), weight, scales,
               static_cast<bf16*>(y.raw()), m, n, k, beta);
}

void CudaBackend::gemm_fp4_resident(const Fp8Activations& x, const PreparedLinear& p, Tensor& y, float beta,
                                    const float* w_scales, int64_t begin) {
    const int64_t m = x.codes.dim(0), k = p.in, n = y.dim(-1);
    // Converted and multiplied in chunks of output channels, so that the E4M3 buffer is a third of dev's largest
    // layer (its single blocks' linear1, 340 MB in E4M3) rather than all of it. The chunks are as even as 256-row
    // multiples allow (linear1: three of 18432 channels), wide enough to fill the SMs.
    const int64_t chunks = std::max<int64_t>(1, (n * k + kFp4ChunkBytes - 1) / kFp4ChunkBytes);
    const int64_t rows = std::min(n, ((n + chunks - 1) / chunks + 255) / 256 * 256);
    // The buffer lives for this layer only (stream-ordered, like any op's temporary; a block of the graph arena when
    // recorded): a buffer held across layers would sit beside the single block's attention, where the step's memory
    // peaks. Of one size whatever the layer (the largest chunk so far), so that one freed buffer fits the next
    // layer's: buffers of each layer's own size left the recorded step holding more (dev --residency fp4, under
    // CUDA's graph allocator then: 22.34 GB at the peak against 22.07 GB).
    fp4_scratch_elements_ = std::max(fp4_scratch_elements_, rows * k);
    Tensor scratch_buffer = empty({fp4_scratch_elements_}, DType::F8_E4M3);
    auto* scratch = static_cast<uint8_t*>(scratch_buffer.raw());
    const auto* codes = static_cast<const uint8_t*>(p.fp4_codes.raw()) + begin * (k / 2);
    const auto* block_scales = static_cast<const uint8_t*>(p.fp4_block_scales.raw()) + begin * (k / 16);
    const auto* row_scales = static_cast<const float*>(p.scales.raw()) + begin;
    for (int64_t n0 = 0; n0 < n; n0 += rows) {
        const int64_t nc = std::min(rows, n - n0);
        {
            FLUX2_PROFILE_OP("convert weight nvfp4->e4m3 (fp4-resident)");
            cuda::launch_nvfp4_to_fp8_scaled(codes + n0 * (k / 2), block_scales + n0 * (k / 16), p.fp4_scale_2,
                                             row_scales + n0, scratch, nc, k, stream());
        }
        auto scope = profile_op(
            [&] {
                return str("gemm fp8 ", m, "x", nc, "x", k, nc < n ? " (chunk)" : "", beta != 0.0f ? " +residual" : "");
            },
            2.0 * m * nc * k);
        gemm_->fp8(static_cast<const uint8_t*>(x.codes.raw()), static_cast<const float*>(x.scales.raw()), scratch,
                   w_scales + n0, static_cast<bf16*>(y.raw()) + n0, m, nc, k, beta, n);
    }
}

void CudaBackend::linear_fp8(const Fp8Activations& x, Tensor& y, const LinearWeight& w, int64_t begin) {
    float beta = 0.0f;
    if (w.lora && !carried_lora(w)) {
        // The branch writes y first and the base GEMM accumulates onto it (lora_branch.cpp says why).
        lora_up(lora_down(x, w), w, y, 0.0f, nullptr, begin);
        beta = 1.0f;
    }
    gemm_fp8_into(x, w, y, beta, nullptr, begin);
}

void CudaBackend::linear_gated_residual(Tensor& x, const Tensor& gate, const Tensor& in, const LinearWeight& w) {
    const PreparedLinear& p = prepare(w);
    // One gate per sample: folding it into the channel scales needs the GEMM to cover one sample.
    if (p.kind != CudaLinearPrecision::fp8 || x.ndim() != 3 || x.dim(0) != 1) {
        gated_residual(x, gate, linear(in, w));
        return;
    }
    const char* op = "linear_gated_residual";
    check_gated_residual(x, gate, op);
    const int64_t ld = fp8_input_width(w);
    check(x.dim(2) == w.out_features && in.ndim() == 3 && in.dim(0) == 1 && in.dim(1) == x.dim(1) &&
              in.dim(2) == (in.dtype() == DType::F8_E4M3 ? ld : w.in_features),
          op, " ", w.name, ": x ", shape_str(x.shape()), " and input ", shape_str(in.shape()), " do not fit a [",
          w.out_features, ", ", w.in_features, "] layer");
    if (!recording()) record_path(w, p.path + lora_path(w));
    const Fp8Activations a = in.dtype() == DType::F8_E4M3 ? fp8_parts(in) : quantize_fp8_for(w, in);
    // x + gate * (s_x s_w acc) = x + s_x (s_w gate) acc: the gate joins the per-channel scale, x is C (beta 1). A
    // branch carried in the GEMM shares those scales, so it is gated with the layer.
    Tensor gated_scales = empty({w.out_features}, DType::F32);
    cuda::launch_scale_by_gate(static_cast<const float*>(p.scales.raw()), static_cast<const bf16*>(gate.raw()),
                               static_cast<float*>(gated_scales.raw()), w.out_features, stream());
    if (w.lora && !carried_lora(w)) lora_up(lora_down(a, w), w, x, 1.0f, &gate);
    gemm_fp8_into(a, w, x, 1.0f, static_cast<const float*>(gated_scales.raw()));
}

Tensor CudaBackend::linear(const Tensor& x, const LinearWeight& w) { return linear_rows(x, w, 0, w.out_features); }

Tensor CudaBackend::linear_rows(const Tensor& x, const LinearWeight& w, int64_t begin, int64_t count) {
    Shape out_shape = x.shape();
    if (!out_shape.empty()) out_shape.back() = count;
    Tensor y;
    linear_rows_to(x, w, begin, count, out_shape, y);
    return y;
}

Tensor CudaBackend::linear_into(const Tensor& x, const LinearWeight& w, Tensor& out, int64_t tok, int64_t col) {
    const int64_t N = w.out_features;
    check(x.ndim() == 3 && out.ndim() == 3 && out.dim(0) == x.dim(0) && out.dim(2) == N && tok >= 0 &&
              tok + x.dim(1) <= out.dim(1) && col >= 0 && col <= N,
          "linear_into ", w.name, ": ", shape_str(x.shape()), " projected to ", N, " columns (from ", col,
          ") does not fit tokens [", tok, ", ", tok + (x.ndim() == 3 ? x.dim(1) : 0), ") of ", shape_str(out.shape()));
    expect_device_bf16(out, "linear_into", "out");
    // One sample's token range is contiguous rows: the GEMM writes them in place. Several samples' ranges are not.
    const size_t offset = static_cast<size_t>(tok * N) * sizeof(bf16);
    if (out.dim(0) != 1 || offset % 16 != 0) return Backend::linear_into(x, w, out, tok, col);
    Tensor y = out.view({1, x.dim(1), N}, DType::BF16, offset);
    linear_rows_to(x, w, 0, N, y.shape(), y);
    return y;
}

void CudaBackend::linear_rows_to(const Tensor& x, const LinearWeight& w, int64_t begin, int64_t count,
                                 const Shape& out_shape, Tensor& y) {
    const PreparedLinear& p = prepare(w);
    w.check_rows(begin, count);
    // E4M3 rows from a fused producer hold the codes of a LoRA branch the layer's GEMM carries too.
    const bool e4m3 = x.dtype() == DType::F8_E4M3;
    check(!e4m3 || p.kind == CudaLinearPrecision::fp8, "linear ", w.name, " runs ", p.path,
          " but got E4M3 activations made for an fp8 layer (a *_for producer named another layer)");
    const int64_t width = e4m3 ? fp8_input_width(w) : w.in_features;
    check(x.ndim() >= 1 && x.dim(-1) == width, "linear ", w.name, ": input ", shape_str(x.shape()), " does not end in ",
          width, e4m3 ? " codes (in_features and the LoRA branch's)" : " (in_features)");
    // A recording runs nothing: path counts are of executed linears, a layer run in parts once.
    if (!recording() && begin == 0) record_path(w, p.path + lora_path(w));
    const bool given = y.defined();  // linear_into's rows of a joint tensor, else a new tensor
    auto output = [&] {
        if (!given) y = empty(out_shape, DType::BF16);
    };
    // Already quantized by a fused producer (layer_norm_modulate_for / swiglu_for).
    if (e4m3 || p.kind == CudaLinearPrecision::fp8) {
        if (!e4m3) expect_device_bf16(x, "linear", w.name.c_str());
        const Fp8Activations a = e4m3 ? fp8_parts(x) : quantize_fp8_for(w, x);
        output();
        linear_fp8(a, y, w, begin);
        return;
    }
    expect_device_bf16(x, "linear", w.name.c_str());
    if (p.kind == CudaLinearPrecision::fp4) {
        // The fp4 GEMM's block scales come swizzled in tiles of 128 rows: a part of the layer runs all of it and
        // keeps its columns (the fp4 path is Blackwell's, and FLUX.2 runs its parts on the fp8 path).
        Shape all = out_shape;
        all.back() = w.out_features;
        Tensor full = linear_fp4(x, all, *p.fp4);
        // The fp4 GEMM takes no C operand: its branch accumulates afterwards.
        if (w.lora) lora_up(lora_down(x, w), w, full, 1.0f);
        if (count == w.out_features && !given) {
            y = full;
            return;
        }
        output();
        copy_into(full, begin, count, y, 0, 0);
        return;
    }
    output();
    float beta = 0.0f;
    if (w.lora) {
        lora_up(lora_down(x, w), w, y, 0.0f, nullptr, begin);
        beta = 1.0f;
    }
    const int64_t m = x.numel() / w.in_features, n = count, k = w.in_features;
    auto scope =
        profile_op([&] { return str("gemm bf16 ", m, "x", n, "x", k, beta != 0.0f ? " +lora" : ""); }, 2.0 * m * n * k);
    gemm_->bf16(static_cast<const bf16*>(x.raw()), static_cast<const bf16*>(p.weight.raw()) + begin * k,
                static_cast<bf16*>(y.raw()), m, n, k, beta);
}

}  // namespace flux2
