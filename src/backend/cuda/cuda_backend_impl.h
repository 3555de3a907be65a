#pragma once
// CudaBackend: activations live on one GPU in BF16; every op is enqueued on the backend's single stream with no
// host synchronization (only download() waits). Kernels live one op per file (kernel -> launcher on raw
// pointers and a stream -> the member function here, which checks shapes and dtypes).
//
// Linear layers take one of two paths (BackendOptions::precision):
//   bf16: the weight is dequantized once to BF16 on the device; cuBLASLt BF16 GEMM, fp32 accumulation.
//   fp8:  NVFP4 weights are converted once to E4M3 with one fp32 scale per output channel (FP8 weights keep their
//         codes); activations are quantized to E4M3 per token; cuBLASLt FP8 GEMM with the two scale vectors
//         applied in its epilogue (OUTER_VEC_32F), BF16 output. Dense (BF16/F16/F32) layers always run in BF16,
//         as the checkpoint marks them.
//   fp4:  (Blackwell) NVFP4 weights keep their codes and block scales in the block-scaled GEMM layout;
//         activations are quantized to NVFP4 per call; cuBLASLt FP4 GEMM (fp4_linear.cpp). FP8 and dense layers
//         run in BF16.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/conv_cudnn.h"
#include "backend/cuda/device_memory.h"
#include "backend/cuda/fp4_linear.h"
#include "backend/cuda/graph_arena.h"
#include "backend/cuda/launchers.h"
#include "backend/cuda/op_profiler.h"
#include "backend/cuda/parkable_memory.h"
#include "backend/cuda/pinned_sources.h"
#include "backend/op_shapes.h"

namespace flux2 {

class CudaLayerStream;
class CudaHostPinning;

namespace cuda {
class CublasLtGemm;
class CublasLtFp4Gemm;
class CudnnSdpa;
class Fp8Attention;
struct Fp8AttentionCodes;
class CudnnCausalSdpa;
}  // namespace cuda

enum class CudaLinearPrecision { bf16, fp8, fp4 };
// "bf16", "fp8" or "fp4": the --precision value that picks it.
const char* precision_name(CudaLinearPrecision p);

// Activations quantized to E4M3 per row, the input form of the FP8 GEMM. A producer kernel (the standalone
// quantizer today; a fused norm/SwiGLU epilogue later) fills both tensors.
struct Fp8Activations {
    Tensor codes;   // F8_E4M3 [rows, ld]: K codes, then (ld > K) the LoRA branch's that its GEMM carries
    Tensor scales;  // F32 [rows]: x[r, :] ~= codes[r, :K] * scales[r]
};

// An FP8 q or k buffer of attention_qk_buffer: F8_E4M3 [B, L, H, Dh] codes, then (at a 16-byte boundary) the one
// F32 scale of the whole tensor (x ~= code * descale). fp8_qk_parts splits it.
struct Fp8Qk {
    uint8_t* codes = nullptr;
    float* descale = nullptr;
};

class CudaBackend final : public Backend {
public:
    explicit CudaBackend(const BackendOptions& options);
    ~CudaBackend() override;

    std::string name() const override { return "cuda"; }

    Tensor upload(const Tensor& host_f32) override;
    Tensor download(const Tensor& t) override;
    void upload_into(const Tensor& host_f32, Tensor& dst) override;
    Tensor upload_state(const Tensor& host_f32) override;  // sampler_ops.cu, as euler_update
    void state_into(const Tensor& state, Tensor& dst) override;
    void synchronize() override;
    Tensor zeros(const Shape& shape) override;
    Tensor uninitialized(const Shape& shape) override;
    int64_t peak_memory_bytes() const override;  // high-water mark of the device memory pools since construction
    void reset_peak_memory() override;           // or since this
    void release_cached_memory() override;
    int64_t memory_in_use_bytes() const override;
    int64_t memory_capacity_bytes() const override { return memory_capacity_; }
    int64_t device_memory_used_bytes() const override;
    int64_t memory_available_bytes() const override;

    Tensor linear(const Tensor& x, const LinearWeight& w) override;
    Tensor linear_rows(const Tensor& x, const LinearWeight& w, int64_t begin, int64_t count) override;
    Tensor linear_into(const Tensor& x, const LinearWeight& w, Tensor& out, int64_t tok, int64_t col) override;

    Tensor silu(const Tensor& x) override;
    Tensor swiglu(const Tensor& x) override;
    Tensor add(const Tensor& a, const Tensor& b) override;
    Tensor mul(const Tensor& a, const Tensor& b) override;
    void euler_update(Tensor& x, const Tensor& v, const Tensor* v_neg, float guidance, float dt) override;

    Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) override;
    Tensor layer_norm_modulate_for(const LinearWeight& next, const Tensor& x, const Tensor& shift, const Tensor& scale,
                                   float eps) override;
    Tensor swiglu_for(const LinearWeight& next, const Tensor& x) override;
    Tensor swiglu_beside_for(const LinearWeight& next, Tensor& out, const Tensor& x, int64_t col, int64_t m) override;
    Tensor attention_beside_for(const LinearWeight& next, Tensor q, Tensor k, const Tensor& v, int64_t v_col,
                                int64_t m) override;
    std::array<Tensor, 2> attention_split_for(const LinearWeight& text_next, const LinearWeight& image_next, Tensor q,
                                              Tensor k, const Tensor& v, int64_t v_col, int64_t split) override;
    void linear_gated_residual(Tensor& x, const Tensor& gate, const Tensor& in, const LinearWeight& w) override;
    void gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) override;
    Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) override;

    Tensor rms_norm_rope(const Tensor& x, const Tensor& norm_weight, const Tensor& cos, const Tensor& sin,
                         float eps) override;
    Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v) override;
    Tensor attention_qk_buffer(const Shape& shape, const std::vector<const Tensor*>& norm_weights) override;

    void rms_norm_rope_into(const Tensor& x, int64_t col, const Tensor& norm_weight, const Tensor& cos,
                            const Tensor& sin, float eps, Tensor& out, int64_t tok) override;
    void swiglu_into(const Tensor& x, int64_t col, int64_t m, Tensor& out, int64_t out_col) override;
    void attention_into(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out,
                        int64_t out_col) override;
    void copy_into(const Tensor& x, int64_t col, int64_t count, Tensor& out, int64_t tok, int64_t out_col) override;

    Tensor concat(const Tensor& a, const Tensor& b, int axis) override;
    Tensor slice(const Tensor& x, int axis, int64_t begin, int64_t count) override;

    Tensor rope_half(const Tensor& x, const Tensor& cos, const Tensor& sin) override;
    Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask) override;

    Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding) override;
    Tensor pad2d(const Tensor& x, int left, int right, int top, int bottom) override;
    Tensor group_norm(const Tensor& x, int num_groups, const Tensor& weight, const Tensor& bias, float eps,
                      bool silu) override;
    Tensor upsample_nearest2x(const Tensor& x) override;
    Tensor add_bias(const Tensor& x, const Tensor& bias) override;
    Tensor transpose_last2(const Tensor& x) override;

    // CUDA graphs through stream capture (recording.cpp).
    bool can_record() const override { return options_.cuda_graphs; }
    void begin_recording() override;
    std::shared_ptr<RecordedOps> end_recording() override;
    void replay(const RecordedOps& ops) override;
    void start_profile() override;
    std::string profile_report() override;
    std::unique_ptr<LayerStream> stream_layers(const std::vector<std::vector<const LinearWeight*>>& groups,
                                               const LayerStreamOptions& options) override;
    std::unique_ptr<HostPinning> pin_host_weights(const std::vector<const LinearWeight*>& linears) override;
    std::vector<AttentionError> attention_errors() override;
    std::unique_ptr<ActivityMonitor> monitor_activity(std::string& why_not) override;

    // ---- beyond the Backend interface (tests, benchmarks, fused producers) ----
    CudaLinearPrecision linear_precision() const { return precision_; }
    bool fp4_resident() const { return fp4_resident_; }
    bool fp8_attention() const { return fp8_attention_; }  // BackendOptions::attention resolved
    const std::string& device_name() const { return device_name_; }
    cudaStream_t stream() const { return stream_->get(); }
    bool recording() const { return stream_->recording(); }  // a CUDA graph is being recorded
    Tensor empty(const Shape& shape, DType dtype);           // uninitialized device tensor on this backend's stream
    // Tests: fill every new tensor with 0xFF bytes (NaN in BF16/F32), so an element an op fails to write shows.
    void set_poison_new_tensors(bool on) { poison_ = on; }
    // Per-row E4M3 quantization of a BF16 tensor [..., K] viewed as [rows, K]; _for: as the FP8 layer w takes it
    // (rows of fp8_input_width(w) codes, with the headroom of a carried LoRA branch).
    Fp8Activations quantize_fp8(const Tensor& x);
    Fp8Activations quantize_fp8_for(const LinearWeight& w, const Tensor& x);
    // The fused producers' result for a layer taking rows of ld codes: one F8_E4M3 tensor [..., ld] (shape gives
    // [..., K]) whose storage holds the codes and then (at a 16-byte boundary) the F32 scale of every row; linear()
    // takes it as an input (and writes a carried LoRA branch's codes into it). fp8_parts splits it.
    Tensor quantized_activations(const Shape& shape, int64_t ld);
    static Fp8Activations fp8_parts(const Tensor& quantized);
    static cuda::E4m3Rows e4m3_rows(const Fp8Activations& a);  // where a producer writes a
    // Where a fused producer writes the E4M3 input q of the layer `next` (quantized_activations of its width), with
    // that layer's headroom.
    cuda::E4m3Rows input_rows(const LinearWeight& next, const Tensor& q);
    static Fp8Qk fp8_qk_parts(const Tensor& qk);
    // Whether linear(·, w) takes E4M3 activations from a fused producer: it runs the FP8 GEMM (prepares w if
    // needed); a LoRA branch on it reads the same E4M3 activations.
    bool takes_fp8_input(const LinearWeight& w);
    // The row width of an FP8 layer's E4M3 input: in_features, plus the padded rank of a LoRA branch carried in its
    // GEMM, whose codes the linear writes itself (lora_fp8_tail.h). Prepares w and its LoRA branch.
    int64_t fp8_input_width(const LinearWeight& w);
    // The headroom of that input's scales: kLoraFp8TailHeadroom when the GEMM carries a LoRA branch, else 1.
    float fp8_input_headroom(const LinearWeight& w);
    cuda::CublasLtGemm& gemm() { return *gemm_; }
    // Times the enclosing op while a profile runs: `name` is a callable returning its label (OpProfiler::scope).
    template <class NameFn>
    cuda::OpProfiler::Scope profile_op(NameFn&& name, double flops = 0.0, double bytes = 0.0) {
        return profiler_.scope(std::forward<NameFn>(name), flops, bytes);
    }
    // NVFP4 quantization of a BF16 tensor [..., K] for the fp4 GEMM: static input_scale, or the dynamic
    // amax/(448*6) scale when absent; the GEMM alpha written with it is tensor scale * alpha_factor.
    Fp4Activations quantize_fp4(const Tensor& x, std::optional<float> input_scale, float alpha_factor);

private:
    friend class CudaLayerStream;
    friend class CudaHostPinning;
    // A host -> device copy of a weight's host bytes: through the page-locked pieces of a live HostPinning when one
    // covers [src, src + bytes) (host_pinning.cpp), else from pageable memory.
    void upload_host(void* dst, const void* src, size_t bytes);
    std::map<const uint8_t*, const std::vector<cuda::PinnedSources::Copy>*> pinned_uploads_;
    struct PreparedLinear;
    const PreparedLinear& prepare(const LinearWeight& w);
    // `streamed`: the weight lives in a LayerStream's device buffer (views from streamed_views), not in its own.
    void prepare_bf16(const LinearWeight& w, PreparedLinear& p, bool streamed);
    void prepare_fp8(const LinearWeight& w, PreparedLinear& p, bool streamed);
    // A fp8 layer's path label: "fp8(e4m3 <weight_scaling> x per-token[, fast accumulation])".
    std::string fp8_label(const char* weight_scaling) const;
    // --offload layers (layer_stream.cpp): the host bytes a linear's device weight is copied from, in the order
    // they sit in its stream buffer; empty when it stays resident (`why` says why).
    struct StreamSource {
        const uint8_t* data;
        size_t bytes;
    };
    std::vector<StreamSource> stream_sources(const LinearWeight& w, std::string& why) const;
    // The host bytes of w's stored form, in that order (dense bytes; NVFP4 codes then block scales; FP8 codes):
    // what preparing it on the device uploads, and what stream_sources streams when it can.
    static std::vector<StreamSource> host_sources(const LinearWeight& w);
    // What w's device weight takes when it stays resident (the budget of LayerStream's resident groups).
    int64_t resident_bytes(const LinearWeight& w) const;
    // Views of a streamed linear's tensors in its buffer, one per shape, laid out as stream_sources.
    std::vector<Tensor> streamed_views(const LinearWeight& w, const std::vector<Shape>& shapes, DType dtype) const;
    struct StreamedPlace {
        Tensor buffer;  // U8, the group's device buffer
        size_t offset = 0;
        // An NVFP4 weight that streams as its E4M3 codes [out, in] (LayerStreamOptions::e4m3_groups): prepare_fp8
        // converts it once and downloads the codes here, page-locked memory the LayerStream owns and copies from.
        uint8_t* e4m3_host = nullptr;
    };
    std::map<const LinearWeight*, StreamedPlace> streamed_;
    // quantize_fp8 and quantize_fp8_for: rows of ld codes with a headroom (E4m3Rows).
    Fp8Activations quantize_rows(const Tensor& x, int64_t ld, float headroom);
    // linear_rows into y: a new tensor of out_shape when y is undefined, else y (linear_into's rows of a joint tensor).
    void linear_rows_to(const Tensor& x, const LinearWeight& w, int64_t begin, int64_t count, const Shape& out_shape,
                        Tensor& y);
    // The FP8 linear of w's rows [begin, begin + y.dim(-1)) (its LoRA branch included) on quantized activations,
    // into y.
    void linear_fp8(const Fp8Activations& x, Tensor& y, const LinearWeight& w, int64_t begin);
    // The FP8 GEMM of w's rows [begin, begin + y.dim(-1)) into y: y = product (beta 0) or y + product (beta 1);
    // w_scales replaces those rows' channel scales in the epilogue when given (the gate-folded scales of
    // linear_gated_residual). A LoRA branch carried in the GEMM (lora_fp8_tail.h) is computed here: its codes go
    // beside x's, its B beside the weight.
    void gemm_fp8_into(const Fp8Activations& x, const LinearWeight& w, Tensor& y, float beta, const float* w_scales,
                       int64_t begin = 0);
    // gemm_fp8_into for a layer kept as NVFP4 (fp4-resident or streamed): its rows converted to E4M3 into a buffer
    // of the call's and multiplied, chunk of output channels by chunk. w_scales: those rows' channel scales.
    void gemm_fp4_resident(const Fp8Activations& x, const PreparedLinear& p, Tensor& y, float beta,
                           const float* w_scales, int64_t begin);
    // w's FP8 weight laid out for its current LoRA branch: [out, in + rank] with B's codes beside W's when the
    // branch is carried in the GEMM, [out, in] otherwise (re-laid out, outside a recording, when the branch changed).
    const PreparedLinear& fp8_weight_for(const LinearWeight& w);
    std::string lora_path(const LinearWeight& w);  // " + lora r.. (how)" for the layer's path, "" without LoRA
    std::shared_ptr<const Fp4PreparedWeight> prepare_fp4(const LinearWeight& w);
    // The LoRA branch (lora_branch.cpp) in two halves: t = x A^T from BF16 x [..., in] or from the E4M3
    // activations the base GEMM reads, then y = beta y + t (B diag-scaled by gate when given)^T, y BF16
    // [..., out], gate BF16 [1, out] (the fused gated residual of one sample).
    struct PreparedLora;
    const PreparedLora& prepare_lora(const LinearWeight& w);  // w.lora's device form, for w
    // w's LoRA branch when its FP8 GEMM carries it (prepared), else nullptr (no branch, or one beside the GEMM).
    const PreparedLora* carried_lora(const LinearWeight& w);
    void check_lora(const LinearWeight& w, const Tensor& y, int64_t begin) const;
    Tensor lora_down(const Tensor& x, const LinearWeight& w);
    Tensor lora_down(const Fp8Activations& x, const LinearWeight& w);
    // t = x A^T from E4M3 activations as fp32 partial sums over shares of k (lora_down_fp8.cu), sized in split.
    Tensor lora_down_partials(const Fp8Activations& x, const LinearWeight& w, cuda::LoraDownSplit& split);
    // For a branch carried in the GEMM: t's codes written beside x's (x's scales grow where they must).
    void carry_lora_codes(const Fp8Activations& x, const LinearWeight& w);
    // y [..., n] takes the branch's outputs [begin, begin + n).
    void lora_up(const Tensor& t, const LinearWeight& w, Tensor& y, float beta, const Tensor* gate = nullptr,
                 int64_t begin = 0);
    Tensor linear_fp4(const Tensor& x, const Shape& out_shape, const Fp4PreparedWeight& w);
    // Joint attention of BF16 [B, L, H, Dh] q/k and v/o with tokens v_row / o_row elements apart (attention.cpp):
    // FP8 (Fp8Attention: ours or cuDNN's) when fp8_attention_ and the head dim allows, else BF16; the path is
    // counted and logged.
    void run_attention(const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* o,
                       int64_t B, int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row);
    // The same with q and k from FP8 attention_qk_buffers (always FP8 attention).
    void run_attention_fp8_qk(const Fp8Qk& q, const Fp8Qk& k, const __nv_bfloat16* v, __nv_bfloat16* o, int64_t B,
                              int64_t L, int64_t H, int64_t Dh, int64_t v_row, int64_t o_row);
    // FP8 attention of FP8 q/k buffers (attention_qk_buffer) with O left in E4M3, in o8 when given (packed
    // [B, L, H, Dh]): attention_beside_for's and attention_split_for's common part (checks, path count, launch).
    cuda::Fp8AttentionCodes attention_e4m3(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col,
                                           uint8_t* o8 = nullptr);
    // attention_into's checks of q, k, v and out (none without one: attention_beside_for's E4M3 output);
    // returns {B, L, H, Dh}.
    std::array<int64_t, 4> attention_into_dims(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col,
                                               const Tensor* out, int64_t out_col);
    // Whether swiglu_beside_for quantizes [attn | mlp] rows of `width` columns for `next` itself: an FP8 layer, rows
    // that fit the kernel's shared-memory row.
    bool quantizes_beside(const LinearWeight& next, int64_t width);
    // swiglu_beside_for's checks of x: `rows` rows holding the MLP half's gate and up (2m columns) at col.
    void check_swiglu_source(const Tensor& x, int64_t rows, int64_t col, int64_t m);
    // conv2d where cuDNN has no engine for the shape: im2col + GEMM into y [B, Cout, Ho, Wo] (conv2d.cu).
    void conv2d_im2col(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dShape& s, int stride,
                       int padding, Tensor& y);

    BackendOptions options_;
    CudaLinearPrecision precision_ = CudaLinearPrecision::bf16;
    bool poison_ = false;
    bool fp4_resident_ = false;          // BackendOptions::residency == "fp4"
    bool fast_fp8_accumulation_ = true;  // BackendOptions::fp8_accumulation != "precise"
    int64_t fp4_scratch_elements_ = 0;   // gemm_fp4_resident's buffer size: the largest chunk so far
    std::string device_name_;
    int sm_count_ = 1;             // sizes the split of skinny kernels (lora_down_fp8.cu)
    int64_t memory_capacity_ = 0;  // cudaDeviceProp::totalGlobalMem
    std::shared_ptr<cuda::Stream> stream_;
    std::unique_ptr<cuda::CublasLtGemm> gemm_;
    std::unique_ptr<cuda::CublasLtFp4Gemm> fp4_gemm_;  // created by the first fp4 linear
    std::unique_ptr<cuda::CudnnSdpa> sdpa_;
    std::unique_ptr<cuda::Fp8Attention> sdpa_fp8_;        // when fp8_attention_
    std::unique_ptr<cuda::CudnnCausalSdpa> causal_sdpa_;  // the text encoders', created by their first call
    bool fp8_attention_ = false;
    bool attention_e4m3_out_ = true;  // attention_beside_for may keep FP8 attention's output in E4M3
    // --attention-error: every FP8 attention call's error sums against the BF16 one (F32 [2] each) and its shape.
    std::vector<std::pair<std::string, Tensor>> attention_checks_;
    std::unique_ptr<cuda::CudnnConv> conv_;
    // conv2d's path per shape, logged once each: cuDNN NCHW, cuDNN NHWC (with transposes) or im2col + GEMM.
    std::map<std::string, std::string> conv_paths_;
    cuda::OpProfiler profiler_;
    // The peak up to the last recording or release_cached_memory (peak_memory_bytes): what was held before either
    // (the eager run before a recording, the blocks given back) and the graph arena after it never coexist, so the
    // high-water marks restart there instead of being added across it.
    int64_t peak_folded_ = 0;
    // The layer streams' buffers (parkable_memory.h), outside the pool.
    std::shared_ptr<cuda::MappedBytes> parkable_bytes_ = std::make_shared<cuda::MappedBytes>();
    // The intermediates of every recorded step (graph_arena.h), made at the first recording; release_cached_memory
    // unmaps it and the next replay maps it again.
    std::shared_ptr<cuda::GraphArena> graph_arena_;
    std::shared_ptr<void> recording_lease_;  // GraphArena::record, while recording
    std::shared_ptr<cuda::MappedBytes> graph_arena_bytes_ = std::make_shared<cuda::MappedBytes>();
    // The pool's high-water mark (and the mapped memory's) restart from what they hold now.
    void reset_pool_highs();
    // Keeps the peak so far apart (peak_folded_) and restarts the marks from what is held now.
    void fold_peak();
    // The device's default memory pool, which every eager allocation comes from (device_memory.cpp).
    cudaMemPool_t default_pool() const;
};

// Profiles the op of the enclosing CudaBackend member under a fixed label.
#define FLUX2_PROFILE_OP(label) auto flux2_profile_scope_ = profile_op([] { return label; })

// Input checks shared by the op entry points: a device BF16 tensor, with `op` and `what` in the message.
void expect_device_bf16(const Tensor& t, const char* op, const char* what);
// x [B, L, D] and gate [B, D] of a gated residual update (gated_residual, linear_gated_residual).
void check_gated_residual(const Tensor& x, const Tensor& gate, const char* op);

}  // namespace flux2
