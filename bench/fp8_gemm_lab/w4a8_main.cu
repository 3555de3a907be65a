// Lab (issue 13, "W4A8 GEMM for fp4 residency"): would a GEMM that reads 4-bit weight codes and converts them to
// E4M3 in its mainloop beat what `--residency fp4` does today, converting each layer's NVFP4 codes into an E4M3
// buffer (launch_nvfp4_to_fp8_scaled) and running cuBLASLt's FP8 GEMM on it? The candidate is CUTLASS 3.x's Hopper
// mixed-input GEMM with table lookups (w4a8_gemm.cuh; w4a8_lab.h says why its timing bounds any such GEMM for NVFP4
// from below). For each of dev's fp4-resident shapes: random codes and tables, the E4M3 weight they stand for
// (dequantized here), cuBLASLt's heuristic pick on that weight as the reference output and as today's GEMM; each
// configuration's output against it; then ROUNDS rounds of RUNS launches each, cuBLASLt first in each round, medians.
// Today's conversion is timed by flux2_bench's BM_ConvertNvfp4Fp8 in the same call (scripts/device-test.sh runs
// both): W4A8 pays where it beats cuBLASLt's time plus that conversion's.
//
// Not part of the build: LAB=w4a8 CUTLASS_INCLUDE=... bash bench/fp8_gemm_lab/build.sh OUTPUT_BINARY (scripts/
// device-test.sh's FLUX2_W4A8_LAB), then [RUNS=100] [ROUNDS=3] OUTPUT_BINARY [shape index ...].
#include <cuda_fp8.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "cublaslt_fp8.h"
#include "lab_driver.cuh"
#include "w4a8_lab.h"

namespace fp8_lab {
W4a8Config w4a8_config_0();
W4a8Config w4a8_config_1();
W4a8Config w4a8_config_2();
W4a8Config w4a8_config_3();
W4a8Config w4a8_config(int i) {
    static const W4a8Config all[kW4a8Configs] = {w4a8_config_0(), w4a8_config_1(), w4a8_config_2(), w4a8_config_3()};
    return all[i];
}
}  // namespace fp8_lab

namespace {
using namespace fp8_lab;

// dev 1024²'s GEMMs on fp4-resident weights: the single block's [q | k | v] and [gate | up] parts and its output
// projection, the double block's image-stream MLP. All without the residual (beta 0), cuBLASLt's too.
const Shape kW4a8Shapes[] = {{4608, 18432, 6144, false},
                             {4608, 36864, 6144, false},
                             {4608, 6144, 24576, false},
                             {4096, 36864, 6144, false},
                             {4096, 6144, 18432, false}};
constexpr long kGroup = 128;  // the mainloop's smallest: one table per feature and K tile

__device__ unsigned lab_hash(unsigned x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

// Random code bytes: every nibble a sign and one of the eight magnitudes.
__global__ void make_codes(unsigned char* codes, size_t bytes) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < bytes; i += size_t(gridDim.x) * blockDim.x)
        codes[i] = static_cast<unsigned char>(lab_hash(static_cast<unsigned>(i) * 2654435761u + 12345u));
}

// Each table holds what a code with its sign bit set stands for: -(m_i s) in E4M3 for the E2M1 magnitudes m_i, with a
// block scale s in [0.25, 2); entry 0 (magnitude 0) is +0, which CUTLASS's lookup gives both signs.
__global__ void make_tables(unsigned char* tables, size_t count) {
    const float magnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
    for (size_t t = blockIdx.x * size_t(blockDim.x) + threadIdx.x; t < count; t += size_t(gridDim.x) * blockDim.x) {
        const float s = 0.25f + 1.75f * static_cast<float>(lab_hash(static_cast<unsigned>(t)) & 0xffff) / 65536.0f;
        tables[8 * t] = 0;
        for (int i = 1; i < 8; ++i)
            tables[8 * t + i] = __nv_cvt_float_to_fp8(-magnitudes[i] * s, __NV_SATFINITE, __NV_E4M3);
    }
}

// The E4M3 weight [n, k] that codes [n, k] (row by row, element j in the low nibble of byte j / 2 when j is even)
// and tables [k / group, n] stand for, as CUTLASS's lookup reads them: the table entry, its sign bit flipped for a
// code without the sign bit unless the magnitude is 0.
__global__ void dequantize(const unsigned char* codes, const unsigned char* tables, unsigned char* w, long n, long k,
                           long group) {
    const size_t total = static_cast<size_t>(n) * k;
    for (size_t e = blockIdx.x * size_t(blockDim.x) + threadIdx.x; e < total; e += size_t(gridDim.x) * blockDim.x) {
        const long f = static_cast<long>(e / k), j = static_cast<long>(e % k);
        const unsigned code = (codes[e / 2] >> (4 * (e % 2))) & 0xF, index = code & 7;
        const unsigned char entry = tables[8 * ((j / group) * n + f) + index];
        w[e] = (code & 8) || index == 0 ? entry : static_cast<unsigned char>(entry ^ 0x80);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::vector<Shape> shapes = shapes_from_args(argc, argv, kW4a8Shapes);
    const int runs = timed_runs(), rounds = timed_rounds();

    Operands ops(shapes);  // x in a_codes; b_codes gets the dequantized weight of each shape
    size_t out_elems = 0, code_bytes = 0, table_bytes = 0;
    for (const Shape& s : shapes) {
        out_elems = std::max<size_t>(out_elems, s.m * s.n);
        code_bytes = std::max<size_t>(code_bytes, s.n * s.k / 2);
        table_bytes = std::max<size_t>(table_bytes, 8 * (s.k / kGroup) * s.n);
    }
    void *reference = nullptr, *natural = nullptr, *codes = nullptr, *tables = nullptr, *workspace = nullptr;
    unsigned* diff = nullptr;
    constexpr size_t kCutlassWorkspace = 64u << 20;
    check(cudaMalloc(&reference, out_elems * 2), "cudaMalloc");
    check(cudaMalloc(&natural, code_bytes), "cudaMalloc");
    check(cudaMalloc(&codes, code_bytes), "cudaMalloc");
    check(cudaMalloc(&tables, table_bytes), "cudaMalloc");
    check(cudaMalloc(&diff, 2 * sizeof(unsigned)), "cudaMalloc");
    check(cudaMalloc(&workspace, kCutlassWorkspace), "cudaMalloc");
    cublasLtHandle_t handle = nullptr;
    check(cublasLtCreate(&handle), "cublasLtCreate");

    for (const Shape& s : shapes) {
        std::printf("%ldx%ldx%ld, tables per %ld inputs\n", s.m, s.n, s.k, kGroup);
        make_codes<<<1024, 256>>>(static_cast<unsigned char*>(natural), s.n * s.k / 2);
        make_tables<<<1024, 256>>>(static_cast<unsigned char*>(tables), (s.k / kGroup) * s.n);
        dequantize<<<4096, 256>>>(static_cast<const unsigned char*>(natural), static_cast<const unsigned char*>(tables),
                                  static_cast<unsigned char*>(ops.b_codes), s.n, s.k, kGroup);
        check(cudaDeviceSynchronize(), "making the weight");

        CublasLtFp8 lt(handle, s, ops);
        cublasLtMatmulAlgo_t heuristic;
        check(lt.heuristic(&heuristic, 1) == 1 ? 0 : 1, "cuBLASLt heuristic");
        check(lt.launch(heuristic), "cublasLtMatmul");
        check(cudaMemcpy(reference, ops.d, s.m * s.n * 2, cudaMemcpyDeviceToDevice), "cudaMemcpy");

        // The reordering atom depends on the MMA's operand type only, so one layout serves every configuration.
        w4a8_config(0).reorder(natural, codes, s.n, s.k);
        std::vector<Variant> variants{{"cuBLASLt heuristic, E4M3 weight", [&] { return lt.launch(heuristic) == 0; }}};
        for (int i = 0; i < kW4a8Configs; ++i) {
            const W4a8Config config = w4a8_config(i);
            const W4a8Call call{codes, tables, ops.a_codes, ops.a_scales, ops.b_scales, ops.d, s.m, s.n, s.k, kGroup};
            const auto once = [&](const char** why) {
                return config.run(call, workspace, kCutlassWorkspace, nullptr, why);
            };
            if (!compare_with_reference(config.name, once, ops.d, reference, s.m * s.n, diff)) continue;
            variants.push_back({config.name, [=] {
                                    const char* ignored;
                                    return config.run(call, workspace, kCutlassWorkspace, nullptr, &ignored);
                                }});
        }

        // Rounds over all variants, cuBLASLt first in each.
        std::printf(" %d rounds of %d launches:\n", rounds, runs);
        time_rounds(variants, s, runs, rounds);
    }
    cublasLtDestroy(handle);
    return 0;
}
