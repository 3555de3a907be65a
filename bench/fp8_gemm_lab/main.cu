// Lab (issue 13, "GEMM efficiency"): would FP8 GEMMs of our own, built from CUTLASS 3.x for Hopper, beat cuBLASLt's
// for the model's shapes when the card is held at its power limit, as a step holds it? cuBLASLt's configurations
// are exhausted (cublaslt_configs.cu beside this file, PERFORMANCE.md); CUTLASS offers what it does not: 128x256 and
// 256x128 tiles with the scales in the epilogue, the pingpong schedule, stream-K, the tile scheduler's swizzle.
// For each shape: every configuration's output against cuBLASLt's (same operands, relative max difference), then
// ROUNDS rounds of RUNS launches each, the configurations alternating with cuBLASLt's heuristic pick, medians
// printed; then the best configuration's swizzle and raster order varied the same way. The results are in
// PERFORMANCE.md ("CUTLASS's FP8 GEMMs against cuBLASLt's").
//
// Not part of the build. CUTLASS's headers come from the nvidia-cutlass wheel: scripts/fetch-cuda-headers.sh
// --cutlass here (scripts/device-test.sh's FLUX2_GEMM_LAB builds and runs it there); on the device machine:
//   CUTLASS_INCLUDE=third_party/cutlass bash bench/fp8_gemm_lab/build.sh /tmp/fp8_gemm_lab
//   [RUNS=100] [ROUNDS=3] /tmp/fp8_gemm_lab [shape index ...]
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cublaslt_fp8.h"
#include "cutlass_lab_gemm.h"
#include "lab_driver.cuh"

namespace fp8_lab {
LabGemmConfig lab_config_0();
LabGemmConfig lab_config_1();
LabGemmConfig lab_config_2();
LabGemmConfig lab_config_3();
LabGemmConfig lab_config_4();
LabGemmConfig lab_config_5();
LabGemmConfig lab_config_6();
LabGemmConfig lab_config_7();
LabGemmConfig lab_config(int i) {
    static const LabGemmConfig all[kLabConfigs] = {lab_config_0(), lab_config_1(), lab_config_2(), lab_config_3(),
                                                   lab_config_4(), lab_config_5(), lab_config_6(), lab_config_7()};
    return all[i];
}
}  // namespace fp8_lab

namespace {
using namespace fp8_lab;

// C for the residual shapes: BF16 values up to about 1024, the size of the products at these scales, so that a C
// read wrongly (or not at all) shows in the comparison.
__global__ void fill_c(unsigned short* c, size_t n) {
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        unsigned h = static_cast<unsigned>(i) * 2654435761u;
        h ^= h >> 15;
        const float v = (static_cast<float>(h & 0xffff) / 32768.0f - 1.0f) * 1024.0f;
        c[i] = static_cast<unsigned short>(__float_as_uint(v) >> 16);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const std::vector<Shape> shapes = shapes_from_args(argc, argv, kShapes);
    const int runs = timed_runs(), rounds = timed_rounds();

    Operands ops(shapes);
    void* reference = nullptr;
    unsigned* diff = nullptr;
    size_t out_elems = 0;
    for (const Shape& s : shapes) out_elems = std::max<size_t>(out_elems, s.m * s.n);
    check(cudaMalloc(&reference, out_elems * 2), "cudaMalloc");
    check(cudaMalloc(&diff, 2 * sizeof(unsigned)), "cudaMalloc");
    fill_c<<<1024, 256>>>(static_cast<unsigned short*>(ops.c), out_elems);
    constexpr size_t kCutlassWorkspace = 64u << 20;
    void* workspace = nullptr;
    check(cudaMalloc(&workspace, kCutlassWorkspace), "cudaMalloc");
    cublasLtHandle_t handle = nullptr;
    check(cublasLtCreate(&handle), "cublasLtCreate");

    for (const Shape& s : shapes) {
        CublasLtFp8 lt(handle, s, ops);
        cublasLtMatmulAlgo_t heuristic;
        check(lt.heuristic(&heuristic, 1) == 1 ? 0 : 1, "cuBLASLt heuristic");
        check(lt.launch(heuristic), "cublasLtMatmul");
        check(cudaMemcpy(reference, ops.d, s.m * s.n * 2, cudaMemcpyDeviceToDevice), "cudaMemcpy");
        std::printf("%ldx%ldx%ld%s\n", s.m, s.n, s.k, s.residual ? " +residual" : "");

        auto cutlass_call = [&](int swizzle, char raster) {
            return LabGemmCall{ops.a_codes, ops.b_codes, ops.a_scales, ops.b_scales, s.residual ? ops.c : nullptr,
                               ops.d,       s.m,         s.n,          s.k,          swizzle,
                               raster};
        };
        std::vector<Variant> variants{{"cuBLASLt heuristic", [&] { return lt.launch(heuristic) == 0; }}};
        for (int i = 0; i < kLabConfigs; ++i) {
            const LabGemmConfig config = lab_config(i);
            const LabGemmRun run = s.residual ? config.residual : config.plain;
            const LabGemmCall call = cutlass_call(1, 'h');
            const auto once = [&](const char** why) { return run(call, workspace, kCutlassWorkspace, nullptr, why); };
            if (!compare_with_reference(config.name, once, ops.d, reference, s.m * s.n, diff)) continue;
            variants.push_back({config.name, [=] {
                                    const char* ignored;
                                    return run(call, workspace, kCutlassWorkspace, nullptr, &ignored);
                                }});
        }

        // Rounds over all variants, cuBLASLt first in each.
        std::printf(" %d rounds of %d launches:\n", rounds, runs);
        const auto ranked = time_rounds(variants, s, runs, rounds);

        // The fastest CUTLASS configuration's scheduler options, against cuBLASLt again.
        std::string best;
        for (const auto& r : ranked)
            if (r.second != variants.front().name) {
                best = r.second;
                break;
            }
        if (best.empty()) continue;
        int best_index = 0;
        for (int i = 0; i < kLabConfigs; ++i)
            if (best == lab_config(i).name) best_index = i;
        const LabGemmRun run = s.residual ? lab_config(best_index).residual : lab_config(best_index).plain;
        std::vector<Variant> options{variants.front()};
        for (int swizzle : {1, 2, 4, 8})
            for (char raster : {'m', 'n'}) {
                const LabGemmCall call = cutlass_call(swizzle, raster);
                options.push_back({best + ", swizzle " + std::to_string(swizzle) + " along " + raster, [=] {
                                       const char* ignored;
                                       return run(call, workspace, kCutlassWorkspace, nullptr, &ignored);
                                   }});
            }
        std::printf(" %s's scheduler options:\n", best.c_str());
        time_rounds(options, s, runs, rounds);
    }
    cublasLtDestroy(handle);
    return 0;
}
