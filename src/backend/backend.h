#pragma once
// The op interface model code runs on. A backend owns where tensors live and which kernel each op uses;
// models call these ops and never branch on device or weight precision.
//
// Conventions: shapes outermost first; activations are [B, L, D] (batch, tokens, features); attention heads
// are laid out [B, L, H, Dh] (head-major inside the feature dimension, as diffusers' view(B, L, H, Dh)).
// The CPU backend computes in F32 on the host: the numerical truth every fast path is tested against.
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/device_activity.h"
#include "quant/linear_weight.h"
#include "tensor/tensor.h"

namespace flux2 {

// How NVFP4 layers treat their input activations.
enum class Nvfp4Activations {
    w4a16,  // exact dequantized weights, activations unquantized (default on CPU)
    w4a4,   // activations fake-quantized to NVFP4 with input_scale (dynamic amax/2688 when absent): Blackwell numerics
};

// Ops recorded by a backend for replay (Backend::end_recording); opaque to callers.
class RecordedOps {
public:
    virtual ~RecordedOps() = default;
};

// --offload model (Backend::pin_host_weights): while it lives, the host bytes of some linears stay page-locked, so
// that preparing them on the device again after their release copies at full bus speed (not through the driver's
// staging of pageable memory).
class HostPinning {
public:
    virtual ~HostPinning() = default;
    virtual std::string describe() const = 0;  // "N GB of M linears"
};

// --offload layers (Backend::stream_layers): the weights of each group of linears (a transformer block, a decoder
// layer) reach the device just before the group runs, copied from page-locked host memory into one of two
// rotating device buffers while the previous group computes. Model code brackets each group's ops with
// enter(i) / leave(i), groups in order, and calls before_replay() before replaying recorded ops.
class LayerStream {
public:
    virtual ~LayerStream() = default;
    // Before group i's ops: they wait (on the device) for its weights; the copy of the next group's starts.
    virtual void enter(size_t group) = 0;
    // After group i's ops: its buffer may be refilled once they have run.
    virtual void leave(size_t group) = 0;
    // Recorded ops begin at enter(0) and may rely on the end of the previous run having copied group 0 ahead;
    // this makes sure it did (a run that failed halfway did not).
    virtual void before_replay() = 0;
    // Gives the buffers' device memory back (after the work queued on them) until the next enter(0) or
    // before_replay() maps it again at the same addresses, so recorded ops stay valid. For components that do not
    // run for a while: the text encoder after a prompt, the transformer during the VAE decode.
    virtual void release_buffers() = 0;
    // For the log: how many linears and bytes stream, the device buffers, what stays resident and why.
    virtual std::string describe() const = 0;
};

// How Backend::stream_layers streams (--resident-budget, --stream-e4m3).
struct LayerStreamOptions {
    int64_t resident_budget_bytes = 0;  // device memory whole groups may keep resident
    // Streamed groups (at most every other one, spread evenly among those holding NVFP4 weights the fp8 path
    // converts) whose NVFP4 weights travel as their E4M3 codes, converted once at load into page-locked host memory:
    // twice the bytes on the bus, no conversion before each GEMM. Pays where the step's compute hides the bus, not
    // where the bus binds.
    int e4m3_groups = 0;
};

struct BackendOptions {
    std::string device = "cpu";  // "cpu", "cuda", "cuda:N", or "auto" (see resolve_device)
    Nvfp4Activations nvfp4_activations = Nvfp4Activations::w4a16;
    std::string precision;  // GPU path: "fp8", "bf16", "fp4"; empty = the device's default
    // Where the fp8 path keeps NVFP4 weights: "fp8" (empty = default; converted once to E4M3, 1 byte per weight)
    // or "fp4" (the NVFP4 codes and block scales stay resident, ~0.56 bytes per weight, and each layer is
    // converted to E4M3 into a buffer of its GEMM call just before it: same numbers, less memory, a little slower).
    std::string residency;
    // CUDA: record the transformer step as a CUDA graph after its first run and replay it (no per-op host work).
    bool cuda_graphs = true;
    // Joint attention on a GPU: "bf16" (cuDNN SDPA), "fp8" (cuDNN's FP8 SDPA, Hopper and newer: E4M3 Q, K, V,
    // probabilities and output, one scale per tensor), "fp8-flux2" (the same numbers from flux2's own kernel for
    // head dim 128 on sm_90, cuDNN's for other head dims; slower than cuDNN's today, for kernel work), or empty /
    // "auto": fp8 on the fp8 and fp4 linear paths where the GPU has it, bf16 on the bf16 path. Head dims FP8 SDPA
    // does not take run in BF16 (logged).
    std::string attention;
    // How the fp8 path's GEMMs (Hopper) add up their products: "fast" (empty = default) keeps a GEMM's partial sums
    // in the tensor cores' own accumulator throughout (cuBLASLt's FAST_ACCUM: ~10% faster GEMMs, error at dev's
    // widths measured in docs/CUDA.md); "precise" promotes them to fp32 registers at intervals. Logged in each
    // layer's path.
    std::string fp8_accumulation;
    // flux2 bench --attention-error: every FP8 attention call is also run in BF16 and their difference kept for
    // attention_errors() (slower; for measuring).
    bool check_attention = false;
};

class Backend {
public:
    Backend();
    virtual ~Backend() = default;
    virtual std::string name() const = 0;
    // Names this backend in LinearWeight::prepared_owner. Unlike its address, which a backend made after this one is
    // destroyed may get again, it is never reused in the process: a weight prepared by a backend that is gone (for
    // another precision, on another stream) is never taken for the new one's.
    uint64_t instance_id() const { return instance_id_; }

    // ---- memory ----
    virtual Tensor upload(const Tensor& host_f32) = 0;  // host F32 -> backend tensor
    virtual Tensor download(const Tensor& t) = 0;       // backend tensor -> host F32
    // The sampler's state (the latents between denoising steps): host F32 -> an F32 tensor on this backend. Unlike
    // activations (BF16 on a GPU) it stays F32, so that a generation's Euler updates add up as they would on the
    // host, and it never crosses the bus between steps.
    virtual Tensor upload_state(const Tensor& host_f32) = 0;
    // state (an upload_state tensor, or a concat of such) -> dst, an activation tensor of the same shape (BF16 on a
    // GPU): what upload_into does from the host.
    virtual void state_into(const Tensor& state, Tensor& dst) = 0;
    // Waits for the work queued so far (a GPU's stream); the CPU runs every op as it is called.
    virtual void synchronize() {}
    virtual Tensor zeros(const Shape& shape) = 0;
    // A tensor whose elements the caller overwrites before reading them (the destination of the *_into ops);
    // its contents are unspecified, so no fill pass is paid.
    virtual Tensor uninitialized(const Shape& shape) = 0;
    // Highest memory use (device memory on a GPU, resident set on the CPU) since construction or the last
    // reset_peak_memory(), in bytes.
    virtual int64_t peak_memory_bytes() const = 0;
    // Starts peak_memory_bytes() anew from what is in use now: the peak of each phase of a request (bench
    // --pipeline). The high-water marks are per process (CPU) or per device (GPU), so other backends' use counts.
    virtual void reset_peak_memory() = 0;
    // Memory held now (device memory of eager tensors on a GPU, resident set on the CPU), in bytes: between steps,
    // about the weights.
    virtual int64_t memory_in_use_bytes() const = 0;
    // The device's memory in use now as its driver sees it, in bytes: every process's, with the CUDA contexts, the
    // libraries' kernels and the allocators' free reserves, which the figures above leave out. -1 without a device.
    virtual int64_t device_memory_used_bytes() const { return -1; }
    // Gives back to the device what the backend keeps for reuse: on a GPU the recorded steps' intermediates (kept
    // between replays, mapped again at the next one), the convolutions' workspace and the allocator's freed
    // blocks. Before the VAE decode under --offload, so that the decode's activations take the place of the step's
    // rather than coming on top.
    virtual void release_cached_memory() {}
    // All the memory of the device (GPU memory; the host's physical memory for the CPU), in bytes.
    virtual int64_t memory_capacity_bytes() const = 0;
    // What this backend could hold now, in bytes: on a GPU the driver's free memory plus what this backend's pools
    // and buffers hold already, so other processes' memory is left out (--offload auto sizes by this, not by the
    // capacity); the capacity where nothing else competes for it.
    virtual int64_t memory_available_bytes() const { return memory_capacity_bytes(); }

    // ---- linear ----
    // y[..., out] = x[..., in] W^T (no bias). The kernel follows w.format; each layer's path is logged at debug
    // level the first time it runs and counted in path_summary().
    virtual Tensor linear(const Tensor& x, const LinearWeight& w) = 0;
    // Output columns [begin, begin + count) of linear(x, w), from w's rows [begin, begin + count) alone: a packed
    // projection run in parts, so that one part's output is gone before the next is made (the single block's
    // [q | k | v] before its MLP half). x may come from a *_for producer of w. A layer run in parts is counted
    // once in path_summary(), by the part that begins at row 0.
    virtual Tensor linear_rows(const Tensor& x, const LinearWeight& w, int64_t begin, int64_t count) = 0;
    // linear(x, w) [B, L, N] for a joint sequence's rows: returns it, and its columns [col, N) are also in tokens
    // [tok, tok + L) of out [B, Lo, N] (the columns before col there may be overwritten). x [B, L, ·] may come from
    // a *_for producer of w. The double block projects its text and image [q | k | v] this way, so that the
    // attention reads both streams' V in one tensor. The CUDA backend's GEMM writes one sample's rows in place and
    // returns them as a view of out; elsewhere the columns are copied.
    virtual Tensor linear_into(const Tensor& x, const LinearWeight& w, Tensor& out, int64_t tok, int64_t col) {
        Tensor y = linear(x, w);
        copy_into(y, col, w.out_features - col, out, tok, col);
        return y;
    }

    // ---- elementwise ----
    virtual Tensor silu(const Tensor& x) = 0;
    virtual Tensor swiglu(const Tensor& x) = 0;                // [..., 2M] -> [..., M]: silu(x[..., :M]) * x[..., M:]
    virtual Tensor add(const Tensor& a, const Tensor& b) = 0;  // same shapes
    virtual Tensor mul(const Tensor& a, const Tensor& b) = 0;  // same shapes

    // ---- norms and modulation ----
    // LayerNorm over the last dim without affine, then (1 + scale) * y + shift. x [B, L, D], shift/scale [B, D].
    virtual Tensor layer_norm_modulate(const Tensor& x, const Tensor& shift, const Tensor& scale, float eps) = 0;
    // x += gate * y (in place). x, y [B, L, D], gate [B, D].
    virtual void gated_residual(Tensor& x, const Tensor& gate, const Tensor& y) = 0;
    // RMSNorm over the last dim with a gain: x [..., D], weight [D] -> x / sqrt(mean(x^2) + eps) * weight.
    virtual Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) = 0;

    // ---- producers of linear inputs ----
    // layer_norm_modulate / swiglu whose result only feeds linear(·, next) (and layers that take the same path).
    // Where next's kernel takes quantized activations, the producer writes that form directly (the CUDA fp8 path:
    // E4M3 codes with one scale per token, the same numbers as quantizing the BF16 result), so no separate
    // quantization pass runs; elsewhere they return what the plain ops return.
    virtual Tensor layer_norm_modulate_for(const LinearWeight& next, const Tensor& x, const Tensor& shift,
                                           const Tensor& scale, float eps) {
        (void)next;
        return layer_norm_modulate(x, shift, scale, eps);
    }
    virtual Tensor swiglu_for(const LinearWeight& next, const Tensor& x) {
        (void)next;
        return swiglu(x);
    }
    // The single block's output-projection input [attn | swiglu(mlp)]: out [B, L, Ca + m] (or, on CUDA, the E4M3
    // form attention_beside_for may return) holds the attention output in its first Ca columns; this fills the other m
    // with swiglu of x's gate and up halves at col (as swiglu_into) and returns what linear(·, next) takes: out itself,
    // or (CUDA fp8) the whole row quantized per token to E4M3 in the same pass, so the BF16 MLP half never goes to
    // memory and back.
    virtual Tensor swiglu_beside_for(const LinearWeight& next, Tensor& out, const Tensor& x, int64_t col, int64_t m) {
        (void)next;
        swiglu_into(x, col, m, out, out.dim(-1) - m);
        return out;
    }

    // The single block's attention as its output projection's input takes it: a new [B, L, H * Dh + m] row whose
    // first H * Dh columns hold attention_into(q, k, v, v_col, ·, 0), for swiglu_beside_for(next, row, x, col, m) to
    // fill the rest. CUDA with FP8 attention on FP8 q/k buffers and an FP8 `next` returns the attention's E4M3
    // output instead ([B, L, H, Dh] codes and their scale), which that swiglu_beside_for quantizes with the MLP half:
    // no BF16 row is made at all (dev 1024²: 226 MB less at the step's peak). q and k are taken (move them in) and
    // let go once the attention has read them.
    virtual Tensor attention_beside_for(const LinearWeight& next, Tensor q, Tensor k, const Tensor& v, int64_t v_col,
                                        int64_t m) {
        (void)next;
        Tensor out = uninitialized({q.dim(0), q.dim(1), q.dim(2) * q.dim(3) + m});
        attention_into(q, k, v, v_col, out, 0);
        return out;
    }

    // The double block's joint attention as its two output projections take it: attention_into(q, k, v, v_col, ·, 0)
    // over [text, image] tokens, returned as {the first `split` tokens for text_next, the rest for image_next}, each
    // [B, ·, H * Dh] (BF16 by default). CUDA with FP8 attention on FP8 q/k buffers hands an FP8 layer without a
    // carried LoRA branch the attention's own E4M3 codes, every row with the tensor's one scale: no BF16 output is
    // made and no quantizing pass reads it (one sample). q and k are taken (move them in) and let go once read.
    virtual std::array<Tensor, 2> attention_split_for(const LinearWeight& text_next, const LinearWeight& image_next,
                                                      Tensor q, Tensor k, const Tensor& v, int64_t v_col,
                                                      int64_t split) {
        (void)text_next;
        (void)image_next;
        Tensor o = uninitialized({q.dim(0), q.dim(1), q.dim(2) * q.dim(3)});
        attention_into(q, k, v, v_col, o, 0);
        q = k = Tensor();
        return {slice(o, 1, 0, split), slice(o, 1, split, o.dim(1) - split)};
    }

    // x += gate * linear(in, w): a block's gated residual update from its output projection. x [B, L, out], gate
    // [B, out]; `in` may come from a *_for producer of w. The CUDA fp8 path folds the gate into the GEMM's
    // per-channel scales and accumulates into x in the epilogue (B = 1); elsewhere it is the two ops.
    virtual void linear_gated_residual(Tensor& x, const Tensor& gate, const Tensor& in, const LinearWeight& w) {
        gated_residual(x, gate, linear(in, w));
    }

    // ---- attention ----
    // Per-head RMSNorm (weight [Dh]) followed by interleaved-pair RoPE: x [B, L, H, Dh], cos/sin [L, Dh]
    // (pair (2j, 2j+1) shares an angle; y0 = x0 c - x1 s, y1 = x1 c + x0 s).
    virtual Tensor rms_norm_rope(const Tensor& x, const Tensor& norm_weight, const Tensor& cos, const Tensor& sin,
                                 float eps) = 0;
    // Non-causal, unmasked SDPA with scale 1/sqrt(Dh): q, k, v [B, L, H, Dh] -> [B, L, H*Dh].
    virtual Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v) = 0;
    // A q or k buffer [B, L, H, Dh] for rms_norm_rope_into to fill (with these gains, one per stream writing into
    // it) and attention_into to read. BF16 by default; where attention runs in FP8 (CUDA) it holds E4M3 codes with
    // one scale fixed in advance from the gains: RMSNorm leaves a head vector of norm sqrt(Dh), so with gain w every
    // element is at most sqrt(Dh) max|w|, and RoPE rotates pairs without changing their norm. The norm kernel then
    // writes the attention's input form directly, and no pass measures and converts Q and K before attention.
    virtual Tensor attention_qk_buffer(const Shape& shape, const std::vector<const Tensor*>& norm_weights) {
        (void)norm_weights;
        return uninitialized(shape);
    }

    // ---- column-range variants (no copies around packed projections) ----
    // These read a range of columns (last-dim indices) of a wider [B, L, C] tensor and/or write into a range of a
    // preallocated one, so the packed [q | k | v | mlp] projection is never sliced and the [attn | mlp] input of
    // a fused output projection is never concatenated. Each equals a slice/concat composition of the ops above.
    //
    // rms_norm_rope of the H heads of Dh columns starting at `col` of x [B, L, Cx], written to tokens
    // [tok, tok + L) of out [B, Lo, H, Dh]; cos/sin [L, Dh] belong to x's tokens.
    virtual void rms_norm_rope_into(const Tensor& x, int64_t col, const Tensor& norm_weight, const Tensor& cos,
                                    const Tensor& sin, float eps, Tensor& out, int64_t tok) = 0;
    // out[b, l, out_col + j] = silu(x[b, l, col + j]) * x[b, l, col + m + j] for j < m; x [B, L, Cx], out [B, L, Co].
    virtual void swiglu_into(const Tensor& x, int64_t col, int64_t m, Tensor& out, int64_t out_col) = 0;
    // attention(q, k, v') where v' is the H*Dh columns starting at v_col of v [B, L, Cv]; the result goes to the
    // H*Dh columns starting at out_col of out [B, L, Co]. q, k [B, L, H, Dh].
    virtual void attention_into(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out,
                                int64_t out_col) = 0;
    // out[b, tok + l, out_col + j] = x[b, l, col + j] for j < count; x [B, L, Cx], out [B, Lo, Co] (trailing
    // dims of out are flattened into Co).
    virtual void copy_into(const Tensor& x, int64_t col, int64_t count, Tensor& out, int64_t tok, int64_t out_col) = 0;

    // ---- sampling ----
    // One flow-matching Euler step on an upload_state tensor: x += dt * v, where under true CFG (v_neg given)
    // v = v_neg + guidance * (v - v_neg). Float32, one rounding per operation in exactly this order (a GPU avoids
    // fused multiply-adds, so its bits match the CPU's); v and v_neg as the transformer's forward leaves them here.
    virtual void euler_update(Tensor& x, const Tensor& v, const Tensor* v_neg, float guidance, float dt) = 0;

    // ---- layout ----
    virtual Tensor concat(const Tensor& a, const Tensor& b, int axis) = 0;  // all other dims equal
    // May share storage with x (the CUDA backend returns views of contiguous ranges): neither may be written in
    // place while the other is still read.
    virtual Tensor slice(const Tensor& x, int axis, int64_t begin, int64_t count) = 0;

    // ---- text encoder ops ----
    // Rotary embedding in the "rotate_half" (GPT-NeoX / Llama / Qwen3 / Mistral) convention: with
    // x1 = x[..., :Dh/2] and x2 = x[..., Dh/2:], y = x * cos + concat(-x2, x1) * sin.
    // x [B, L, H, Dh]; cos, sin [L, Dh] (shared by every sample) or [B, L, Dh] (per-sample positions).
    virtual Tensor rope_half(const Tensor& x, const Tensor& cos, const Tensor& sin) = 0;
    // Causal self-attention with grouped KV heads and a key padding mask, scale 1/sqrt(Dh):
    // q [B, L, H, Dh]; k, v [B, L, Hkv, Dh] with H % Hkv == 0 (query head h reads KV head h / (H / Hkv));
    // key_mask [B, L] F32 (nonzero = real token, 0 = padding). Query i attends to the keys j <= i whose
    // key_mask[b, j] is nonzero. A query with no such key (left padding) outputs zeros: that is what PyTorch >= 2.5
    // SDPA returns for a fully masked row, and transformers hands those rows on to FLUX.2. -> [B, L, H*Dh]
    virtual Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask) = 0;

    // ---- image ops (VAE) ----
    // Images and feature maps are NCHW [B, C, H, W], as in PyTorch.
    // 2-D cross-correlation with bias: x [B, Cin, H, W], weight [Cout, Cin, kh, kw], bias [Cout], the same zero
    // padding on every side -> [B, Cout, (H + 2p - kh) / stride + 1, (W + 2p - kw) / stride + 1].
    virtual Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, int stride, int padding) = 0;
    // Zero padding of the last two dims: [..., H, W] -> [..., H + top + bottom, W + left + right].
    virtual Tensor pad2d(const Tensor& x, int left, int right, int top, int bottom) = 0;
    // GroupNorm with affine: x [B, C, ...] in num_groups groups of C / num_groups channels, statistics over each
    // group's channels and all positions; y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c], then SiLU if
    // `silu` (the VAE's norm -> activation pairs).
    virtual Tensor group_norm(const Tensor& x, int num_groups, const Tensor& weight, const Tensor& bias, float eps,
                              bool silu) = 0;
    // Nearest-neighbour 2x upsampling: [B, C, H, W] -> [B, C, 2H, 2W].
    virtual Tensor upsample_nearest2x(const Tensor& x) = 0;
    // x + bias broadcast over the last dim: x [..., N], bias [N] (bias of a linear layer).
    virtual Tensor add_bias(const Tensor& x, const Tensor& bias) = 0;
    // Swaps the last two dims: [..., M, N] -> [..., N, M] (channels-first <-> token-major).
    virtual Tensor transpose_last2(const Tensor& x) = 0;

    // ---- recording and replay (CUDA graphs) ----
    // The ops enqueued between begin_recording() and end_recording() become one unit that replay() runs again on
    // the same tensors with no per-op host work. While recording nothing executes; tensors made by ops during the
    // recording must be gone by end_recording(); inputs and outputs are tensors made before it (refill inputs with
    // upload_into). Backends that cannot record say so with can_record() and refuse the calls.
    virtual bool can_record() const { return false; }
    virtual void begin_recording();
    virtual std::shared_ptr<RecordedOps> end_recording();
    virtual void replay(const RecordedOps& ops);
    // Overwrites the backend tensor `dst` with the host F32 tensor `host_f32` of the same shape.
    virtual void upload_into(const Tensor& host_f32, Tensor& dst) = 0;

    // ---- layer streaming (--offload layers) ----
    // From now on the linears of `groups` keep only their scales on the device; their weights are copied in per
    // group around LayerStream::enter / leave. Whole groups whose resident weights fit the options' budget stay
    // resident instead (those that would stream the most bytes first, spread among the others), and so do
    // linears the backend cannot stream (describe() names both). Null where there is nothing to stream: the CPU
    // computes from host memory. The linears' host bytes must not change or move while the stream lives, and it
    // must die before them and before the backend.
    virtual std::unique_ptr<LayerStream> stream_layers(const std::vector<std::vector<const LinearWeight*>>& groups,
                                                       const LayerStreamOptions& options);
    // ---- page-locked uploads (--offload model) ----
    // Page-locks the host bytes of `linears` (null where nothing gains: the CPU; or when the host cannot lock that
    // much, said in a warning: uploads then stay pageable). The same lifetime rules as stream_layers.
    virtual std::unique_ptr<HostPinning> pin_host_weights(const std::vector<const LinearWeight*>& linears);

    // ---- profiling ----
    // Device time of every op enqueued from start_profile() until profile_report(), which waits for them and
    // returns a table (per op and GEMM shape: calls, time, share; the idle time between ops). flux2 bench
    // --profile. Backends without a profiler refuse.
    virtual void start_profile();
    virtual std::string profile_report();

    // Starts watching the device's clock, power and energy until the monitor's stop() (flux2 bench: the timed
    // steps). Null with `why_not` empty where there is no device to read (the CPU, this default); null with `why_not`
    // saying why where a device's readings cannot be had.
    virtual std::unique_ptr<ActivityMonitor> monitor_activity(std::string& why_not);

    // One FP8 attention call checked against the BF16 attention of the same inputs.
    struct AttentionError {
        std::string shape;  // "[B, L, H, Dh]"
        double relative;    // relative L2 difference
    };
    // Every FP8 attention call since the last call of this, in order, when BackendOptions::check_attention is on;
    // empty otherwise.
    virtual std::vector<AttentionError> attention_errors() { return {}; }

    // One line: how many linear (and, on a GPU, attention) calls took which path ("nvfp4->w4a16 x12, bf16->f32 x20",
    // "attention->fp8(cudnn) x56").
    std::string path_summary() const;
    void reset_path_counts() { path_counts_.clear(); }

protected:
    // Backends call this from linear(); logs the first use of each layer at debug level.
    void record_path(const LinearWeight& w, const std::string& path);
    // Counts one call of a non-linear op's path in path_summary(); returns the count so far (1 = its first use).
    int64_t count_path(const std::string& path) { return ++path_counts_[path]; }

private:
    const uint64_t instance_id_;
    std::map<std::string, int64_t> path_counts_;
};

// The CPU backend always exists; "cuda" needs a build with CUDA and a GPU (clear error otherwise).
// options.device "auto" is resolved first (resolve_device).
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

// The device "auto" stands for: "cuda" when a GPU this build can run on is present (logged with its name and
// precision path), else "cpu" with a one-line note saying why. --activations w4a4 and precision f32 are CPU
// numerics, so with them "auto" is the CPU. Any other device is returned unchanged. Callers that need the concrete
// device before making a backend (bench picks its precision list by it) call this; make_backend does too.
std::string resolve_device(const BackendOptions& options);

}  // namespace flux2
