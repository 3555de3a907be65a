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
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cublaslt_fp8.h"
#include "cutlass_lab_gemm.h"

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

__device__ float lab_bf16(const unsigned short* p, size_t i) { return __uint_as_float(unsigned(p[i]) << 16); }

// max |x - y| and max |y| over n BF16 values, as float bits (non-negative floats order as their bits do)
__global__ void max_difference(const unsigned short* x, const unsigned short* y, size_t n, unsigned* out) {
    float diff = 0.0f, ref = 0.0f;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        diff = fmaxf(diff, fabsf(lab_bf16(x, i) - lab_bf16(y, i)));
        ref = fmaxf(ref, fabsf(lab_bf16(y, i)));
    }
    atomicMax(out, __float_as_uint(diff));
    atomicMax(out + 1, __float_as_uint(ref));
}

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

float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? -1.0f : v[v.size() / 2];
}

struct Variant {
    std::string name;
    std::function<bool()> launch;
};
}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::vector<Shape> shapes;
    for (int i = 1; i < argc; ++i) shapes.push_back(kShapes[std::atoi(argv[i])]);
    if (shapes.empty()) shapes.assign(std::begin(kShapes), std::end(kShapes));
    const int runs = timed_runs();
    const int rounds = std::getenv("ROUNDS") ? std::max(1, std::atoi(std::getenv("ROUNDS"))) : 3;

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
            const char* why = "";
            check(cudaMemset(ops.d, 0, s.m * s.n * 2), "cudaMemset");
            if (!run(call, workspace, kCutlassWorkspace, nullptr, &why) || cudaDeviceSynchronize() != cudaSuccess) {
                std::printf("  %-50s refused (%s)\n", config.name, why);
                cudaGetLastError();
                continue;
            }
            check(cudaMemset(diff, 0, 2 * sizeof(unsigned)), "cudaMemset");
            max_difference<<<1024, 256>>>(static_cast<unsigned short*>(ops.d), static_cast<unsigned short*>(reference),
                                          s.m * s.n, diff);
            unsigned host[2];
            check(cudaMemcpy(host, diff, sizeof(host), cudaMemcpyDeviceToHost), "cudaMemcpy");
            float d, r;
            std::memcpy(&d, &host[0], 4);
            std::memcpy(&r, &host[1], 4);
            std::printf("  %-50s max |D - cuBLASLt's| / max |cuBLASLt's| = %.2e\n", config.name, d / r);
            variants.push_back({config.name, [=] {
                                    const char* ignored;
                                    return run(call, workspace, kCutlassWorkspace, nullptr, &ignored);
                                }});
        }

        // Rounds over all variants, cuBLASLt first in each, so every variant sees the card at the same heat.
        auto time_all = [&](const std::vector<Variant>& vs) {
            std::map<std::string, std::vector<float>> us;
            for (const Variant& v : vs) time_launches(v.launch, runs);  // warm-up, up to the power limit
            for (int round = 0; round < rounds; ++round)
                for (const Variant& v : vs) us[v.name].push_back(time_launches(v.launch, runs));
            std::vector<std::pair<float, std::string>> ranked;
            for (const Variant& v : vs) ranked.emplace_back(median(us[v.name]), v.name);
            const float base = median(us[vs.front().name]);
            for (const Variant& v : vs) {
                const float m = median(us[v.name]);
                std::printf("  %-50s %9.1f us %5.0f TFLOP/s %+6.1f%%\n", v.name.c_str(), m, tflops(s, m),
                            100.0 * (m - base) / base);
            }
            std::sort(ranked.begin(), ranked.end());
            return ranked;
        };
        std::printf(" %d rounds of %d launches:\n", rounds, runs);
        const auto ranked = time_all(variants);

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
        time_all(options);
    }
    cublasLtDestroy(handle);
    return 0;
}
