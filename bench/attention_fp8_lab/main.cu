// Lab (issue 13, "FP8 attention"): flux2's FP8 (E4M3) attention for head dim 128 on Hopper
// (src/backend/cuda/attention_fp8_sm90.cuh, which says how it works) checked and timed alone: the relative L2 error
// of its BF16 and E4M3 outputs against an fp32 attention of the same codes (sampled rows), and the time of the
// attention kernel and of V's transposing quantizer, per shape. -DBN_TILE=128|192|224 picks the KV tile (the engine
// uses 192). The findings are in docs/PERFORMANCE.md ("An FP8 attention kernel of our own").
//
// On the device machine (scripts/device-test.sh does this with FLUX2_ATTENTION_LAB):
//   nvcc -gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 -Isrc bench/attention_fp8_lab/main.cu -o /tmp/fa8
//   /tmp/fa8 [case index]
#include <cuda.h>
#include <cudaTypedefs.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "backend/cuda/attention_fp8_sm90.cuh"

#ifndef BN_TILE
#define BN_TILE 192
#endif
using namespace flux2::cuda;
using namespace flux2::cuda::fa8;
constexpr int BN = BN_TILE, D = kD, BM = kBM, THREADS = kThreads, SMEM = kSmemBytes<BN>;

// The reference's inputs: the codes and their descales.
struct RefInputs {
    const uint8_t* q8;   // [B, L, H, D]
    const uint8_t* k8;   // [B, L, H, D]
    const uint8_t* vt8;  // [B, H, Lp / 32, D, 32]
    const float *q_descale, *k_descale, *v_descale;
    int L, H, Lp;
    float softmax_scale;
};

#define CK(x)                                                                              \
    do {                                                                                   \
        cudaError_t e = (x);                                                               \
        if (e != cudaSuccess) {                                                            \
            printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e), __FILE__, __LINE__); \
            exit(1);                                                                       \
        }                                                                                  \
    } while (0)

// Reference: fp32 attention from the codes, for selected query rows.
__global__ void ref_kernel(RefInputs p, const int* rows, int nrows, float* out) {
    const int idx = blockIdx.x, h = blockIdx.y, b = 0;
    if (idx >= nrows) return;
    const int row = rows[idx], L = p.L, H = p.H;
    __shared__ float q[D], o[D], w[1024];
    __shared__ float red[256];
    const int tid = threadIdx.x;
    const int64_t rs = int64_t(H) * D;
    auto dec = [](uint8_t c) {
        __nv_fp8_e4m3 x;
        x.__x = c;
        return float(x);
    };
    if (tid < D) q[tid] = dec(p.q8[(int64_t(b) * L + row) * rs + h * D + tid]) * p.q_descale[0];
    if (tid < D) o[tid] = 0;
    __syncthreads();
    float mx = -INFINITY;
    for (int kv = tid; kv < L; kv += 256) {
        float acc = 0;
        for (int d = 0; d < D; ++d) acc += q[d] * dec(p.k8[(int64_t(b) * L + kv) * rs + h * D + d]) * p.k_descale[0];
        mx = fmaxf(mx, acc * p.softmax_scale);
    }
    red[tid] = mx;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (tid < s) red[tid] = fmaxf(red[tid], red[tid + s]);
        __syncthreads();
    }
    mx = red[0];
    __syncthreads();
    float lsum = 0;
    // chunks of 1024 keys
    for (int k0 = 0; k0 < L; k0 += 1024) {
        for (int kv = k0 + tid; kv < min(L, k0 + 1024); kv += 256) {
            float acc = 0;
            for (int d = 0; d < D; ++d)
                acc += q[d] * dec(p.k8[(int64_t(b) * L + kv) * rs + h * D + d]) * p.k_descale[0];
            const float e = expf(acc * p.softmax_scale - mx);
            w[kv - k0] = e;
            lsum += e;
        }
        __syncthreads();
        if (tid < D) {
            float a = 0;
            for (int kv = k0; kv < min(L, k0 + 1024); ++kv) {
                const int pos = (kv & ~31) | vt_pos(kv & 31);
                const int64_t chunk = (int64_t(b) * H + h) * (p.Lp / 32) + pos / 32;
                a += w[kv - k0] * dec(p.vt8[(chunk * D + tid) * 32 + pos % 32]) * p.v_descale[0];
            }
            o[tid] += a;
        }
        __syncthreads();
    }
    red[tid] = lsum;
    __syncthreads();
    for (int s = 128; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    if (tid < D) out[(int64_t(idx) * H + h) * D + tid] = o[tid] / red[0];
}

static float bf2f(__nv_bfloat16 x) { return __bfloat162float(x); }

static PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
    static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
    if (!fn) {
        cudaDriverEntryPointQueryResult q;
        void* f = nullptr;
        CK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
        fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
    }
    return fn;
}
static CUtensorMap encode(const void* base, int rank, const cuuint64_t* dims, const cuuint64_t* strides,
                          const cuuint32_t* box, CUtensorMapSwizzle swizzle) {
    CUtensorMap m;
    const cuuint32_t estr[4] = {1, 1, 1, 1};
    CUresult r = encode_fn()(&m, CU_TENSOR_MAP_DATA_TYPE_UINT8, rank, const_cast<void*>(base), dims, strides, box, estr,
                             CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) {
        printf("tensor map error %d\n", int(r));
        exit(1);
    }
    return m;
}
// A [rows, cols] byte matrix (rows `pitch` bytes apart) read in boxes of 128 columns x box_rows rows with the
// 128-byte swizzle (Q and K).
static CUtensorMap tile_map(const void* base, uint64_t cols, uint64_t rows, uint64_t pitch, uint32_t box_rows) {
    const cuuint64_t dims[2] = {cols, rows}, strides[1] = {pitch};
    const cuuint32_t box[2] = {128, box_rows};
    return encode(base, 2, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_128B);
}
// vt8 [B * H, Lp / 32, D, 32] read in boxes of BN / 32 chunks of one head with the 32-byte swizzle; chunks past
// Lp / 32 read as zeros.
static CUtensorMap vt_map(const void* base, uint64_t heads, uint64_t Lp) {
    const cuuint64_t dims[4] = {32, D, Lp / 32, heads}, strides[3] = {32, 32 * D, 32 * D * (Lp / 32)};
    const cuuint32_t box[4] = {32, D, BN / 32, 1};
    return encode(base, 4, dims, strides, box, CU_TENSOR_MAP_SWIZZLE_32B);
}

int main(int argc, char** argv) {
    struct Case {
        int L, H, iters;
    };
    // A ragged length (masking, partial tiles), dev and klein-4B at 1024^2 (512 text + 4096 image tokens, 48 and 24
    // heads), klein-9B (32 heads), dev at 2048^2.
    const std::vector<Case> cases = {{1000, 4, 0}, {4608, 48, 20}, {4608, 24, 20}, {4608, 32, 20}, {16896, 48, 3}};
    const int only = argc > 1 ? atoi(argv[1]) : -1;  // one case by index
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, %d SMs; KV tile %d\n", prop.name, prop.multiProcessorCount, BN);
    CK(cudaFuncSetAttribute(attention_kernel<BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM));
    CK(cudaFuncSetAttribute(attention_kernel<BN>, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
    int per_sm = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, attention_kernel<BN>, THREADS, SMEM));
    printf("%d CTAs of %d threads and %d bytes of shared memory per SM\n", per_sm, THREADS, SMEM);
    for (int ci = 0; ci < int(cases.size()); ++ci) {
        if (only >= 0 && ci != only) continue;
        const int L = cases[ci].L, H = cases[ci].H, iters = cases[ci].iters, B = 1, Lp = (L + 63) / 64 * 64;
        const size_t n = size_t(B) * L * H * D;
        // Q and K as E4M3 codes with descale 0.05 (logits of a few units: a peaked softmax), V as BF16 ~ N(0, 1).
        std::mt19937 rng(42);
        std::normal_distribution<float> nd(0.f, 1.f);
        std::vector<uint8_t> hq(n), hk(n);
        std::vector<__nv_bfloat16> hv(n);
        float amax = 0;
        for (size_t i = 0; i < n; ++i) {
            hq[i] = __nv_fp8_e4m3(nd(rng) * 40.f).__x;
            hk[i] = __nv_fp8_e4m3(nd(rng) * 40.f).__x;
            hv[i] = __float2bfloat16(nd(rng));
            amax = fmaxf(amax, fabsf(bf2f(hv[i])));
        }
        // Q's and K's descales, V's amax (the transposing quantizer's one partial), the scale slots it fills.
        const float hs[3] = {0.05f, 0.05f, amax};
        uint8_t *q8, *k8, *vt8, *o8;
        __nv_bfloat16 *v, *o;
        float *sc, *scales;
        CK(cudaMalloc(&q8, n));
        CK(cudaMalloc(&k8, n));
        CK(cudaMalloc(&o8, n));
        CK(cudaMalloc(&vt8, size_t(B) * H * D * Lp));
        CK(cudaMalloc(&v, n * 2));
        CK(cudaMalloc(&o, n * 2));
        CK(cudaMalloc(&sc, sizeof(hs)));
        CK(cudaMalloc(&scales, kAttentionFp8ScaleCount * sizeof(float)));
        CK(cudaMemcpy(q8, hq.data(), n, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(k8, hk.data(), n, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(v, hv.data(), n * 2, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(sc, hs, sizeof(hs), cudaMemcpyHostToDevice));
        const float softmax_scale = 1.0f / sqrtf(float(D)), v_descale = amax / 448.f;
        Params p{sc, sc + 1, scales + kDescaleV, o, int64_t(H) * D, nullptr, L, H, softmax_scale};
        const RefInputs ref_in{q8, k8, vt8, sc, sc + 1, scales + kDescaleV, L, H, Lp, softmax_scale};
        const dim3 tgrid(Lp / 64, H, B), grid((L + BM - 1) / BM, H, B);
        const CUtensorMap tq = tile_map(q8, uint64_t(H) * D, uint64_t(B) * L, uint64_t(H) * D, BM);
        const CUtensorMap tk = tile_map(k8, uint64_t(H) * D, uint64_t(B) * L, uint64_t(H) * D, BN);
        const CUtensorMap tv = vt_map(vt8, uint64_t(B) * H, Lp);
        auto transpose = [&] {
            v_transpose_kernel<<<tgrid, 256>>>(v, int64_t(H) * D, sc + 2, 1, scales, vt8, L, H, Lp);
        };
        transpose();
        attention_kernel<BN><<<grid, THREADS, SMEM>>>(tq, tk, tv, p);
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());

        std::vector<int> rows;
        for (int r = 0; r < L; r += std::max(1, L / 61)) rows.push_back(r);
        rows.push_back(L - 1);
        int* drows;
        float* dref;
        CK(cudaMalloc(&drows, rows.size() * sizeof(int)));
        CK(cudaMalloc(&dref, rows.size() * H * D * sizeof(float)));
        CK(cudaMemcpy(drows, rows.data(), rows.size() * sizeof(int), cudaMemcpyHostToDevice));
        ref_kernel<<<dim3(rows.size(), H), 256>>>(ref_in, drows, rows.size(), dref);
        CK(cudaDeviceSynchronize());
        std::vector<float> ref(rows.size() * H * D);
        std::vector<__nv_bfloat16> ho(n);
        CK(cudaMemcpy(ref.data(), dref, ref.size() * sizeof(float), cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(ho.data(), o, n * 2, cudaMemcpyDeviceToHost));
        p.o = nullptr;  // the same with an E4M3 output (V's scale)
        p.o8 = o8;
        attention_kernel<BN><<<grid, THREADS, SMEM>>>(tq, tk, tv, p);
        CK(cudaDeviceSynchronize());
        std::vector<uint8_t> ho8(n);
        CK(cudaMemcpy(ho8.data(), o8, n, cudaMemcpyDeviceToHost));
        p.o = o;
        p.o8 = nullptr;
        double err = 0, err8 = 0, den = 0;
        for (size_t i = 0; i < rows.size(); ++i)
            for (int hh = 0; hh < H; ++hh)
                for (int d = 0; d < D; ++d) {
                    const size_t at = (size_t(rows[i]) * H + hh) * D + d;
                    const float r = ref[(i * H + hh) * D + d], g = bf2f(ho[at]);
                    __nv_fp8_e4m3 c;
                    c.__x = ho8[at];
                    err += (g - r) * (g - r);
                    err8 += (float(c) * v_descale - r) * (float(c) * v_descale - r);
                    den += r * r;
                }
        printf("L=%d H=%d: relative L2 error, BF16 output %.3e, E4M3 output %.3e\n", L, H, sqrt(err / den),
               sqrt(err8 / den));
        if (iters) {
            cudaEvent_t e0, e1;
            CK(cudaEventCreate(&e0));
            CK(cudaEventCreate(&e1));
            auto time_us = [&](auto&& launch) {
                for (int w = 0; w < 3; ++w) launch();
                CK(cudaEventRecord(e0));
                for (int it = 0; it < iters; ++it) launch();
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                return ms * 1000.0 / iters;
            };
            const double us = time_us([&] { attention_kernel<BN><<<grid, THREADS, SMEM>>>(tq, tk, tv, p); });
            const double vus = time_us(transpose);
            printf("   attention %.1f us = %.0f TFLOP/s; V transposition %.1f us\n", us,
                   4.0 * B * H * double(L) * L * D / us * 1e-6, vus);
            CK(cudaEventDestroy(e0));
            CK(cudaEventDestroy(e1));
        }
        for (void* ptr : {(void*)q8, (void*)k8, (void*)o8, (void*)vt8, (void*)v, (void*)o, (void*)sc, (void*)scales,
                          (void*)drows, (void*)dref})
            CK(cudaFree(ptr));
    }
    return 0;
}
