// CUDA kernel benchmarks at FLUX.2-dev 1024x1024 shapes (4096 image + 512 text tokens): the BF16 and FP8 cuBLASLt
// GEMMs of the three largest linears, the full FP8 linear (per-token quantization + GEMM) on an NVFP4 weight, cuDNN
// attention, the memory-bound row kernels, the per-layer conversion of 4-bit weights and a LoRA branch's
// down-projection. Each iteration is timed with CUDA events on random (non-zero) data; the counters report the median
// iteration: median_ms, TFLOP/s (GEMM/attention) or GB/s (bytes read + written once). Run on the GPU machine by
// scripts/device-test.sh; compare with bench/torch_baseline.py from the same call.
#ifdef FLUX2_HAVE_CUDA
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "backend/cuda/attention_cudnn.h"
#include "backend/cuda/attention_fp8_kernels.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_backend_impl.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_cublaslt.h"
#include "backend/cuda/launchers.h"
#include "quant/float_codecs.h"

namespace flux2 {
namespace {

constexpr int kWarmup = 3;

// One backend per attention path for all benchmarks (default precision: fp8 on Hopper). Deliberately never
// destroyed: their streams must not be torn down after the CUDA runtime has shut down at exit.
CudaBackend* make_bench_backend(const std::string& attention) {
    BackendOptions o;
    o.device = "cuda";
    o.attention = attention;
    return cuda_device_available() ? static_cast<CudaBackend*>(make_cuda_backend(o).release()) : nullptr;
}
CudaBackend* backend() {
    static CudaBackend* be = make_bench_backend("bf16");
    return be;
}
CudaBackend* fp8_attention_backend() {
    static CudaBackend* be = make_bench_backend("fp8");
    return be;
}
CudaBackend* fp8_flux2_attention_backend() {
    static CudaBackend* be = make_bench_backend("fp8-flux2");
    return be;
}

uint64_t next(uint64_t& s) {  // xorshift64*: fast enough for a few hundred million values
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
}

// Uniform values in [-amp, amp) as BF16, on the device.
Tensor random_bf16(CudaBackend& be, const Shape& shape, float amp, uint64_t seed) {
    std::vector<uint16_t> host(shape_numel(shape));
    for (auto& v : host) v = f32_to_bf16(amp * (static_cast<float>(next(seed) >> 40) / 8388608.0f - 1.0f));
    Tensor t = be.empty(shape, DType::BF16);
    FLUX2_CUDA_CHECK(cudaMemcpy(t.raw(), host.data(), host.size() * 2, cudaMemcpyHostToDevice));
    return t;
}

// Random bytes with a mask applied (keeps E4M3 codes finite / NVFP4 scales moderate), on the device.
Tensor random_bytes(CudaBackend& be, const Shape& shape, DType dtype, uint8_t mask, uint64_t seed) {
    std::vector<uint8_t> host(shape_numel(shape));
    for (auto& v : host) v = static_cast<uint8_t>(next(seed) >> 56) & mask;
    Tensor t = be.empty(shape, dtype);
    FLUX2_CUDA_CHECK(cudaMemcpy(t.raw(), host.data(), host.size(), cudaMemcpyHostToDevice));
    return t;
}

Tensor random_f32(CudaBackend& be, int64_t n, float lo, float hi, uint64_t seed) {
    std::vector<float> host(n);
    for (auto& v : host) v = lo + (hi - lo) * static_cast<float>(next(seed) >> 40) / 16777216.0f;
    Tensor t = be.empty({n}, DType::F32);
    FLUX2_CUDA_CHECK(cudaMemcpy(t.raw(), host.data(), n * 4, cudaMemcpyHostToDevice));
    return t;
}

// E4M3 codes [rows, k] with one F32 scale per row in [lo, hi), as the FP8 GEMM and the LoRA down-projection take
// their operands. Clearing bit 6 keeps the exponent below the NaN encoding: finite codes of magnitude < 2.
struct Fp8Rows {
    Tensor codes, scales;
};
Fp8Rows random_fp8_rows(CudaBackend& be, int64_t rows, int64_t k, float lo, float hi, uint64_t seed) {
    return {random_bytes(be, {rows, k}, DType::F8_E4M3, 0xBF, seed), random_f32(be, rows, lo, hi, seed + 2)};
}

// Times `op` per iteration with events on the backend stream; reports the median.
// `before` runs ahead of each timed op, outside the timing (e.g. an L2 flush).
void time_op(benchmark::State& st, CudaBackend& be, const std::function<void()>& op, double flops, double bytes,
             const std::function<void()>& before = {}) {
    cudaEvent_t start, stop;
    FLUX2_CUDA_CHECK(cudaEventCreate(&start));
    FLUX2_CUDA_CHECK(cudaEventCreate(&stop));
    for (int i = 0; i < kWarmup; ++i) op();
    be.synchronize();
    std::vector<double> ms;
    for (auto _ : st) {
        if (before) before();
        FLUX2_CUDA_CHECK(cudaEventRecord(start, be.stream()));
        op();
        FLUX2_CUDA_CHECK(cudaEventRecord(stop, be.stream()));
        FLUX2_CUDA_CHECK(cudaEventSynchronize(stop));
        float t = 0;
        FLUX2_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
        ms.push_back(t);
        st.SetIterationTime(t * 1e-3);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    st.counters["median_ms"] = median;
    if (flops > 0) st.counters["TFLOP/s"] = flops / (median * 1e-3) * 1e-12;
    if (bytes > 0) st.counters["GB/s"] = bytes / (median * 1e-3) * 1e-9;
}

#define FLUX2_NEED_GPU(st)                       \
    CudaBackend* be = backend();                 \
    if (!be) {                                   \
        st.SkipWithError("no CUDA GPU visible"); \
        return;                                  \
    }

// ---- GEMMs: y [m, n] = x [m, k] w [n, k]^T ----
void BM_GemmBf16(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
    Tensor x = random_bf16(*be, {m, k}, 1.0f, 1), w = random_bf16(*be, {n, k}, 0.05f, 2);
    Tensor y = be->empty({m, n}, DType::BF16);
    time_op(
        st, *be,
        [&] {
            be->gemm().bf16(static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(w.raw()),
                            static_cast<cuda::bf16*>(y.raw()), m, n, k);
        },
        2.0 * m * n * k, 0);
}

void BM_GemmFp8(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
    const auto [xq, xs] = random_fp8_rows(*be, m, k, 0.5f, 2.0f, 3);
    const auto [wq, ws] = random_fp8_rows(*be, n, k, 0.001f, 0.01f, 4);
    Tensor y = be->empty({m, n}, DType::BF16);
    time_op(
        st, *be,
        [&] {
            be->gemm().fp8(static_cast<const uint8_t*>(xq.raw()), static_cast<const float*>(xs.raw()),
                           static_cast<const uint8_t*>(wq.raw()), static_cast<const float*>(ws.raw()),
                           static_cast<cuda::bf16*>(y.raw()), m, n, k);
        },
        2.0 * m * n * k, 0);
}

// The whole FP8 linear on an NVFP4 weight: per-token quantization of x, then the FP8 GEMM.
void BM_LinearNvfp4Fp8Path(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    if (be->linear_precision() != CudaLinearPrecision::fp8) {
        st.SkipWithError("the GPU's default linear precision is not fp8");
        return;
    }
    const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
    LinearWeight w;
    w.name = "bench.nvfp4";
    w.out_features = n;
    w.in_features = k;
    w.format = WeightFormat::nvfp4;
    w.nvfp4.codes.resize(n * k / 2);
    w.nvfp4.scales.resize(n * k / 16);
    uint64_t s = 7;
    for (auto& c : w.nvfp4.codes) c = static_cast<uint8_t>(next(s) >> 56);
    for (auto& c : w.nvfp4.scales) c = static_cast<uint8_t>(0x30 + (next(s) >> 60));  // E4M3 scales 0.5 .. 1.9
    w.nvfp4.weight_scale_2 = 0.01f;
    Tensor x = random_bf16(*be, {m, k}, 1.0f, 8);
    time_op(
        st, *be, [&] { be->linear(x, w); }, 2.0 * m * n * k, 0);
}

// st.range(3): 0 = BF16 attention (cuDNN SDPA), 1 = FP8 (cuDNN's FP8 SDPA with our quantize and dequantize passes),
// 2 = FP8 from flux2's sm_90a kernel (with Q's and K's quantize pass and V's transposing quantizer).
void BM_Attention(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    if (st.range(3) == 1) be = fp8_attention_backend();
    if (st.range(3) == 2) be = fp8_flux2_attention_backend();
    const int64_t B = 1, L = st.range(0), H = st.range(1), Dh = st.range(2);
    Tensor q = random_bf16(*be, {B, L, H, Dh}, 2.0f, 9), k = random_bf16(*be, {B, L, H, Dh}, 2.0f, 10);
    Tensor v = random_bf16(*be, {B, L, H, Dh}, 1.0f, 11);
    time_op(
        st, *be, [&] { be->attention(q, k, v); }, 4.0 * B * H * L * L * Dh, 0);
}

// ---- memory-bound row kernels at [4608 tokens, 6144] ----
void BM_LayerNormModulate(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4608, D = 6144;
    Tensor x = random_bf16(*be, {1, L, D}, 2.0f, 12), sh = random_bf16(*be, {1, D}, 0.5f, 13);
    Tensor sc = random_bf16(*be, {1, D}, 0.5f, 14);
    time_op(
        st, *be, [&] { be->layer_norm_modulate(x, sh, sc, 1e-6f); }, 0, 2.0 * 2 * L * D);
}

void BM_Swiglu(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4608, M = 18432;
    Tensor x = random_bf16(*be, {1, L, 2 * M}, 2.0f, 15);
    time_op(
        st, *be, [&] { be->swiglu(x); }, 0, 2.0 * 3 * L * M);
}

void BM_RmsNormRope(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4608, H = 48, Dh = 128;
    Tensor x = random_bf16(*be, {1, L, H, Dh}, 2.0f, 16), w = random_bf16(*be, {Dh}, 1.0f, 17);
    Tensor c = random_bf16(*be, {L, Dh}, 1.0f, 18), s = random_bf16(*be, {L, Dh}, 1.0f, 19);
    time_op(
        st, *be, [&] { be->rms_norm_rope(x, w, c, s, 1e-6f); }, 0, 2.0 * 2 * L * H * Dh);
}

// The forms dev's single block runs (issue 13): LayerNorm-modulate writing E4M3 codes and per-token scales, and the
// per-head RMSNorm + RoPE reading q out of the packed [q | k | v] projection (rows of 3 x 6144) and writing E4M3 under
// one scale. GB/s counts x read and the codes written once.
void BM_LayerNormModulateFp8(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4608, D = 6144;
    Tensor x = random_bf16(*be, {1, L, D}, 2.0f, 12), sh = random_bf16(*be, {1, D}, 0.5f, 13);
    Tensor sc = random_bf16(*be, {1, D}, 0.5f, 14);
    Tensor q = be->empty({L, D}, DType::F8_E4M3), scales = be->empty({L}, DType::F32);
    const cuda::E4m3Rows out{static_cast<uint8_t*>(q.raw()), static_cast<float*>(scales.raw()), D};
    time_op(
        st, *be,
        [&] {
            cuda::launch_layer_norm_modulate_fp8(
                static_cast<const cuda::bf16*>(x.raw()), static_cast<const cuda::bf16*>(sh.raw()),
                static_cast<const cuda::bf16*>(sc.raw()), out, L, L, D, 1e-6f, be->stream());
        },
        0, 3.0 * L * D);
}

void BM_RmsNormRopeFp8(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4608, H = 48, Dh = 128, D = H * Dh;
    Tensor qkv = random_bf16(*be, {L, 3 * D}, 2.0f, 16), w = random_bf16(*be, {Dh}, 1.0f, 17);
    Tensor c = random_bf16(*be, {L, Dh}, 1.0f, 18), s = random_bf16(*be, {L, Dh}, 1.0f, 19);
    Tensor y8 = be->empty({L, D}, DType::F8_E4M3), descale = random_f32(*be, 1, 0.05f, 0.05f, 20);
    time_op(
        st, *be,
        [&] {
            cuda::launch_rms_norm_rope_strided(
                static_cast<const cuda::bf16*>(qkv.raw()), 3 * D, static_cast<const cuda::bf16*>(w.raw()),
                static_cast<const cuda::bf16*>(c.raw()), static_cast<const cuda::bf16*>(s.raw()), nullptr,
                static_cast<uint8_t*>(y8.raw()), static_cast<const float*>(descale.raw()), 1, L, H, Dh, L, 0, 1e-6f,
                be->stream());
        },
        0, 3.0 * L * D);
}

// V's per-tensor E4M3 conversion before cuDNN's FP8 attention (the amax pass, then the codes), in the form dev's
// single block runs it: V out of the [q | k | v] rows, none of it in the L2 at the start (as after the QK-norm in a
// step: each iteration starts after a write of 256 MB elsewhere). GB/s counts V read once and its codes written.
void BM_AttentionFp8QuantizeV(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4608, D = 6144;
    Tensor qkv = random_bf16(*be, {L, 3 * D}, 2.0f, 26), v8 = be->empty({L, D}, DType::F8_E4M3);
    Tensor scratch = be->empty({cuda::kAttentionFp8ScaleCount + cuda::kAttentionFp8AmaxBlocks}, DType::F32);
    auto* scales = static_cast<float*>(scratch.raw());
    Tensor flush = be->empty({int64_t{256} << 20}, DType::U8);
    time_op(
        st, *be,
        [&] {
            cuda::launch_attention_fp8_quantize_v(static_cast<const cuda::bf16*>(qkv.raw()) + 2 * D, 3 * D,
                                                  static_cast<uint8_t*>(v8.raw()),
                                                  scales + cuda::kAttentionFp8ScaleCount, scales, L, D, be->stream());
        },
        0, 3.0 * L * D, [&] { FLUX2_CUDA_CHECK(cudaMemsetAsync(flush.raw(), 1, flush.nbytes(), be->stream())); });
}

// The double block's SwiGLU into E4M3 for the MLP's output projection: dev's image stream, [4096, 2 x 18432] BF16 in.
void BM_SwigluFp8(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4096, M = 18432;
    Tensor x = random_bf16(*be, {L, 2 * M}, 2.0f, 27);
    Tensor q = be->empty({L, M}, DType::F8_E4M3), scales = be->empty({L}, DType::F32);
    const cuda::E4m3Rows out{static_cast<uint8_t*>(q.raw()), static_cast<float*>(scales.raw()), M};
    time_op(
        st, *be,
        [&] { cuda::launch_swiglu_fp8(static_cast<const cuda::bf16*>(x.raw()), 2 * M, out, L, M, be->stream()); }, 0,
        5.0 * L * M);
}

void BM_QuantizeFp8(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t L = 4608, D = 6144;
    Tensor x = random_bf16(*be, {L, D}, 2.0f, 20);
    time_op(
        st, *be, [&] { be->quantize_fp8(x); }, 0, 3.0 * L * D);
}

// The per-layer NVFP4 -> E4M3 conversion of fp4-resident and streamed weights [n, k] (codes, block scales and row
// scales given): GB/s counts the 4-bit codes and block scales read and the E4M3 codes written.
void BM_ConvertNvfp4Fp8(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t n = st.range(0), k = st.range(1);
    Tensor codes = random_bytes(*be, {n, k / 2}, DType::U8, 0xFF, 23);
    Tensor scales = random_bytes(*be, {n, k / 16}, DType::U8, 0x77, 24);  // finite E4M3 block scales, >= 0
    Tensor row_scales = random_f32(*be, n, 0.5f, 2.0f, 25), q = be->empty({n, k}, DType::F8_E4M3);
    time_op(
        st, *be,
        [&] {
            cuda::launch_nvfp4_to_fp8_scaled(
                static_cast<const uint8_t*>(codes.raw()), static_cast<const uint8_t*>(scales.raw()), 0.01f,
                static_cast<const float*>(row_scales.raw()), static_cast<uint8_t*>(q.raw()), n, k, be->stream());
        },
        0, static_cast<double>(n) * k * (0.5 + 1.0 / 16 + 1.0));
}

// A LoRA branch's down-projection on E4M3 activations (lora_down_fp8.cu, split over k) with the sum of its splits
// into BF16 t: rows of k codes, rank r. GB/s counts the activations' codes read once (the rest is small).
void BM_LoraDownFp8(benchmark::State& st) {
    FLUX2_NEED_GPU(st);
    const int64_t m = st.range(0), k = st.range(1), r = st.range(2);
    const auto [xq, xs] = random_fp8_rows(*be, m, k, 0.5f, 2.0f, 21);
    const auto [aq, as] = random_fp8_rows(*be, r, k, 0.001f, 0.01f, 22);
    Tensor a = be->empty({r, k}, DType::F16), t = be->empty({m, r}, DType::BF16);
    cuda::launch_e4m3_to_f16(static_cast<const uint8_t*>(aq.raw()), static_cast<__half*>(a.raw()), r * k, be->stream());
    int sms = 0;
    FLUX2_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    const cuda::LoraDownSplit split = cuda::plan_lora_down_fp8(m, k, r, sms);
    Tensor partials = be->empty({split.splits * m * split.r_tot}, DType::F32);
    time_op(
        st, *be,
        [&] {
            cuda::launch_lora_down_fp8(static_cast<const uint8_t*>(xq.raw()), k, static_cast<const __half*>(a.raw()), r,
                                       m, k, split, static_cast<float*>(partials.raw()), be->stream());
            cuda::launch_lora_down_bf16(static_cast<const float*>(partials.raw()), split,
                                        static_cast<const float*>(xs.raw()), static_cast<const float*>(as.raw()),
                                        static_cast<cuda::bf16*>(t.raw()), m, r, be->stream());
        },
        2.0 * m * split.r_tot * k, static_cast<double>(m) * k);
    st.counters["splits"] = static_cast<double>(split.splits);
}

// FLUX.2-dev at 1024x1024: single-block linear1 and linear2, double-block MLP in (image tokens).
void gemm_shapes(benchmark::internal::Benchmark* b) {
    b->Args({4608, 55296, 6144})->Args({4608, 6144, 24576})->Args({4096, 36864, 6144});
    b->UseManualTime()->Iterations(20)->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_GemmBf16)->Apply(gemm_shapes);
// linear1 and linear2 with a carried LoRA branch's codes: 64 columns (K not a whole number of 128-code tiles), 128
// (lora_branch.cpp pads to whole tiles)
BENCHMARK(BM_GemmFp8)
    ->Apply(gemm_shapes)
    ->Args({4608, 55296, 6208})
    ->Args({4608, 55296, 6272})
    ->Args({4608, 6144, 24640})
    ->Args({4608, 6144, 24704});
BENCHMARK(BM_LinearNvfp4Fp8Path)->Apply(gemm_shapes);
BENCHMARK(BM_Attention)
    ->Args({4608, 48, 128, 0})
    ->Args({4608, 48, 128, 1})
    ->Args({4608, 48, 128, 2})
    ->Args({16896, 48, 128, 0})
    ->Args({16896, 48, 128, 1})
    ->Args({16896, 48, 128, 2})
    ->UseManualTime()
    ->Iterations(20)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LayerNormModulate)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Swiglu)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RmsNormRope)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_LayerNormModulateFp8)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RmsNormRopeFp8)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_QuantizeFp8)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_AttentionFp8QuantizeV)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SwigluFp8)->UseManualTime()->Iterations(50)->Unit(benchmark::kMicrosecond);
// dev's single-block linear1 [55296, 6144] and linear2 [6144, 24576] weights; linear1's [q | k | v] and [gate | up]
// parts as the split single block converts them, and the double block's MLP out (the W4A8 lab's shapes).
BENCHMARK(BM_ConvertNvfp4Fp8)
    ->Args({55296, 6144})
    ->Args({6144, 24576})
    ->Args({18432, 6144})
    ->Args({36864, 6144})
    ->Args({6144, 18432})
    ->UseManualTime()
    ->Iterations(50)
    ->Unit(benchmark::kMicrosecond);
// dev's single-block linear1 and linear2 inputs (4608 tokens) at ranks 32, 48 and 64; the text stream's 512 tokens.
BENCHMARK(BM_LoraDownFp8)
    ->Args({4608, 6144, 32})
    ->Args({4608, 24576, 32})
    ->Args({4608, 24576, 48})
    ->Args({4608, 24576, 64})
    ->Args({512, 6144, 32})
    ->UseManualTime()
    ->Iterations(50)
    ->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace flux2
#endif  // FLUX2_HAVE_CUDA
