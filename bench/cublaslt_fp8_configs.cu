// Lab (issue 13, "GEMM efficiency"): is there a faster cuBLASLt configuration than the heuristic's for the model's FP8
// GEMMs? Same descriptor as src/backend/cuda/gemm_cublaslt.cpp (E4M3 x E4M3, per-feature x per-token OUTER_VEC_32F
// scales, fast accumulation, BF16 output; beta 1 for the gated-residual shapes). For that form the heuristic offers
// a single algorithm, so the backend's autotune has nothing to choose; this file varies that algorithm's
// configuration (tile, stages, cluster shape, custom option, split-K, CTA swizzle), keeps what cublasLtMatmulAlgoCheck
// accepts, times an even sample of it and prints the fastest next to the heuristic's pick, then the five fastest
// again, each right after the heuristic's pick (PERFORMANCE.md "The step at the power limit" has the results).
// Not part of the build; on the device machine:
//   nvcc -arch=sm_90a -O2 -std=c++17 bench/cublaslt_fp8_configs.cu -lcublasLt -lpthread -o /tmp/fp8_configs
//   [QUICK=1 [CLUSTERS=1]] [RUNS=100] /tmp/fp8_configs [shape index ...]
// No index: every shape below. Checking all configurations of one shape takes minutes even on all cores; QUICK=1
// (tiles, stages, split-K) seconds. RUNS=100 times each configuration held at the card's power limit.
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>
#include <vector>

namespace {

void check(int status, const char* what) {
    if (status != 0) {
        std::fprintf(stderr, "%s failed: %d\n", what, status);
        std::exit(1);
    }
}

struct Shape {
    long m, n, k;   // row-major y [m, n] = x [m, k] w [n, k]^T: tokens, output features, input features
    bool residual;  // beta 1 (the output projections, into the residual stream)
};
// dev 1024² (single block: linear1 parts, linear2; double block image stream), then klein-4B and klein-9B.
const Shape kShapes[] = {{4608, 36864, 6144, false}, {4608, 6144, 24576, true}, {4608, 18432, 6144, false},
                         {4096, 36864, 6144, false}, {4096, 6144, 18432, true}, {4608, 18432, 3072, false},
                         {4608, 3072, 12288, true},  {4608, 9216, 3072, false}, {4608, 24576, 4096, false},
                         {4608, 4096, 16384, true},  {4608, 12288, 4096, false}};
// RUNS=N: launches per timing (default 10). Hundreds hold the card at its power limit, as a step does: a
// configuration that draws less power can then win although it is slower at the top clock.
const int kTimedRuns = std::getenv("RUNS") ? std::max(1, std::atoi(std::getenv("RUNS"))) : 10;
constexpr size_t kTimedSample = 800;  // configurations timed per shape, evenly spread over the accepted ones
constexpr size_t kWorkspace = 32u << 20;

uint32_t config(const cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoConfigAttributes_t attr) {
    uint32_t v = 0;
    size_t written = 0;
    cublasLtMatmulAlgoConfigGetAttribute(&a, attr, &v, sizeof(v), &written);
    return v;
}

std::vector<uint32_t> cap_list(const cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoCapAttributes_t attr) {
    size_t bytes = 0;
    cublasLtMatmulAlgoCapGetAttribute(&a, attr, nullptr, 0, &bytes);
    std::vector<uint32_t> v(bytes / sizeof(uint32_t));
    if (!v.empty()) cublasLtMatmulAlgoCapGetAttribute(&a, attr, v.data(), bytes, &bytes);
    return v;
}

int32_t cap_int(const cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoCapAttributes_t attr) {
    int32_t v = 0;
    size_t written = 0;
    cublasLtMatmulAlgoCapGetAttribute(&a, attr, &v, sizeof(v), &written);
    return v;
}

void set(cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoConfigAttributes_t attr, uint32_t v) {
    cublasLtMatmulAlgoConfigSetAttribute(&a, attr, &v, sizeof(v));
}

void print(const char* label, const cublasLtMatmulAlgo_t& a, float us, const Shape& s) {
    std::printf("  %-9s tile %u stages %u cluster %u custom %u split-k %u swizzle %u: %.1f us (%.0f TFLOP/s)\n", label,
                config(a, CUBLASLT_ALGO_CONFIG_TILE_ID), config(a, CUBLASLT_ALGO_CONFIG_STAGES_ID),
                config(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID), config(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION),
                config(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM), config(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING), us,
                2.0 * s.m * s.n * s.k / us / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines through a pipe, even when a timeout ends the run
    std::vector<Shape> shapes;
    for (int i = 1; i < argc; ++i) shapes.push_back(kShapes[std::atoi(argv[i])]);
    if (shapes.empty()) shapes.assign(std::begin(kShapes), std::end(kShapes));

    cublasLtHandle_t handle = nullptr;
    check(cublasLtCreate(&handle), "cublasLtCreate");
    size_t operand_bytes = 0, out_bytes = 0;
    for (const Shape& s : shapes) {
        operand_bytes = std::max<size_t>(operand_bytes, std::max(s.m, s.n) * s.k);
        out_bytes = std::max<size_t>(out_bytes, s.m * s.n * 2);
    }
    void *a_codes, *b_codes, *c, *d, *workspace;
    float *a_scales, *b_scales;
    check(cudaMalloc(&a_codes, operand_bytes), "cudaMalloc");
    check(cudaMalloc(&b_codes, operand_bytes), "cudaMalloc");
    check(cudaMalloc(&c, out_bytes), "cudaMalloc");
    check(cudaMalloc(&d, out_bytes), "cudaMalloc");
    check(cudaMalloc(&workspace, kWorkspace), "cudaMalloc");
    check(cudaMalloc(&a_scales, 65536 * sizeof(float)), "cudaMalloc");
    check(cudaMalloc(&b_scales, 65536 * sizeof(float)), "cudaMalloc");
    {
        // Random E4M3 codes (never the NaN pattern S.1111.111): constant operands would draw less power than the
        // model's and run faster.
        std::vector<unsigned char> codes(operand_bytes);
        unsigned state = 1;
        for (unsigned char& b : codes) {
            state = state * 1664525u + 1013904223u;
            b = static_cast<unsigned char>(((state >> 24) & 0x7e) | ((state & 0x100) ? 0x80 : 0));
        }
        check(cudaMemcpy(a_codes, codes.data(), operand_bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
        check(cudaMemcpy(b_codes, codes.data(), operand_bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
        const std::vector<float> scales(65536, 0.01f);
        check(cudaMemcpy(a_scales, scales.data(), 65536 * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        check(cudaMemcpy(b_scales, scales.data(), 65536 * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
        check(cudaMemset(c, 0, out_bytes), "cudaMemset");
    }
    cudaEvent_t start, stop;
    cudaEventCreate(&start);
    cudaEventCreate(&stop);

    for (const Shape& s : shapes) {
        // cuBLAS is column-major: D (n x m) = op(A = w) B (= x), as gemm_cublaslt.cpp lays it out.
        cublasLtMatmulDesc_t desc;
        check(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
        auto attr = [&](cublasLtMatmulDescAttributes_t which, const auto& v) {
            check(cublasLtMatmulDescSetAttribute(desc, which, &v, sizeof(v)), "cublasLtMatmulDescSetAttribute");
        };
        attr(CUBLASLT_MATMUL_DESC_TRANSA, CUBLAS_OP_T);
        attr(CUBLASLT_MATMUL_DESC_TRANSB, CUBLAS_OP_N);
        attr(CUBLASLT_MATMUL_DESC_A_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
        attr(CUBLASLT_MATMUL_DESC_B_SCALE_MODE, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F);
        attr(CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, static_cast<const void*>(a_scales));
        attr(CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, static_cast<const void*>(b_scales));
        attr(CUBLASLT_MATMUL_DESC_FAST_ACCUM, static_cast<int8_t>(1));
        cublasLtMatrixLayout_t la, lb, ld;
        check(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, s.k, s.n, s.k), "layout");
        check(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, s.k, s.m, s.k), "layout");
        check(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, s.n, s.m, s.n), "layout");
        const float alpha = 1.0f, beta = s.residual ? 1.0f : 0.0f;
        auto time = [&](const cublasLtMatmulAlgo_t& algo) -> float {
            auto launch = [&] {
                return cublasLtMatmul(handle, desc, &alpha, a_codes, la, b_codes, lb, &beta, c, ld, d, ld, &algo,
                                      workspace, kWorkspace, nullptr);
            };
            if (launch() != CUBLAS_STATUS_SUCCESS) return -1.0f;
            cudaEventRecord(start);
            for (int r = 0; r < kTimedRuns; ++r) launch();
            cudaEventRecord(stop);
            cudaEventSynchronize(stop);
            if (cudaGetLastError() != cudaSuccess) return -1.0f;
            float ms = 0.0f;
            cudaEventElapsedTime(&ms, start, stop);
            return ms * 1000.0f / kTimedRuns;
        };

        cublasLtMatmulPreference_t pref;
        check(cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
        check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kWorkspace,
                                                   sizeof(kWorkspace)),
              "preference");
        cublasLtMatmulHeuristicResult_t offered[16];
        int count = 0;
        check(cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, ld, ld, pref, 16, offered, &count), "heuristic");
        const cublasLtMatmulAlgo_t heuristic = offered[0].algo;
        time(heuristic);  // warm-up
        const float heuristic_us = time(heuristic);
        std::printf("%ldx%ldx%ld%s: the heuristic offers %d algorithm(s)\n", s.m, s.n, s.k,
                    s.residual ? " +residual" : "", count);

        // Every variation of the heuristic's algorithm that the library accepts for this descriptor.
        const std::vector<uint32_t> tiles = cap_list(heuristic, CUBLASLT_ALGO_CAP_TILE_IDS);
        const uint32_t heuristic_stages = config(heuristic, CUBLASLT_ALGO_CONFIG_STAGES_ID);
        const int32_t custom_max = cap_int(heuristic, CUBLASLT_ALGO_CAP_CUSTOM_OPTION_MAX);
        const uint32_t heuristic_custom = config(heuristic, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION);
        const bool split_k = cap_int(heuristic, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT) != 0;
        const uint32_t clusters[] = {CUBLASLT_CLUSTER_SHAPE_AUTO,  CUBLASLT_CLUSTER_SHAPE_1x1x1,
                                     CUBLASLT_CLUSTER_SHAPE_2x1x1, CUBLASLT_CLUSTER_SHAPE_4x1x1,
                                     CUBLASLT_CLUSTER_SHAPE_1x2x1, CUBLASLT_CLUSTER_SHAPE_2x2x1,
                                     CUBLASLT_CLUSTER_SHAPE_1x4x1};
        // Every combination, checked on all CPU cores (one handle each): a shape has over half a million.
        std::vector<cublasLtMatmulAlgo_t> combos;
        // QUICK=1: tiles, stages and split-K only (the cluster shape left to the library, the heuristic's custom
        // option or none, no swizzle): a few hundred combinations instead of half a million. CLUSTERS=1 adds the
        // cluster shapes to that (a cluster shares operand tiles between its CTAs: less traffic, less power).
        const bool quick = std::getenv("QUICK") != nullptr, any_cluster = std::getenv("CLUSTERS") != nullptr;
        for (uint32_t tile : tiles)
            for (uint32_t stages : {heuristic_stages, 0u})
                for (uint32_t cluster : clusters)
                    for (int32_t custom = 0; custom <= custom_max; ++custom)
                        for (uint32_t splits = 1; splits <= (split_k ? 4u : 1u); ++splits)
                            for (uint32_t swizzle : {0u, 1u}) {
                                if (quick &&
                                    ((!any_cluster && cluster != CUBLASLT_CLUSTER_SHAPE_AUTO) || swizzle != 0 ||
                                     (custom != 0 && static_cast<uint32_t>(custom) != heuristic_custom)))
                                    continue;
                                cublasLtMatmulAlgo_t a = heuristic;
                                set(a, CUBLASLT_ALGO_CONFIG_TILE_ID, tile);
                                set(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, stages);
                                set(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, cluster);
                                set(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, static_cast<uint32_t>(custom));
                                set(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, splits);
                                set(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, swizzle);
                                set(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                    splits > 1 ? CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE
                                               : CUBLASLT_REDUCTION_SCHEME_NONE);
                                combos.push_back(a);
                            }
        const unsigned workers = std::max(1u, std::thread::hardware_concurrency());
        std::vector<std::vector<cublasLtMatmulAlgo_t>> found(workers);
        std::vector<std::thread> pool;
        for (unsigned w = 0; w < workers; ++w)
            pool.emplace_back([&, w] {
                cublasLtHandle_t own = nullptr;
                check(cublasLtCreate(&own), "cublasLtCreate");
                for (size_t i = w; i < combos.size(); i += workers) {
                    cublasLtMatmulHeuristicResult_t result;
                    if (cublasLtMatmulAlgoCheck(own, desc, la, lb, ld, ld, &combos[i], &result) ==
                            CUBLAS_STATUS_SUCCESS &&
                        result.workspaceSize <= kWorkspace)
                        found[w].push_back(combos[i]);
                }
                cublasLtDestroy(own);
            });
        for (std::thread& t : pool) t.join();
        std::vector<cublasLtMatmulAlgo_t> accepted;
        for (const auto& f : found) accepted.insert(accepted.end(), f.begin(), f.end());
        const long checked = static_cast<long>(combos.size());
        const size_t stride = std::max<size_t>(1, accepted.size() / kTimedSample);
        // Before the timing, which takes minutes at RUNS=100: a run that a timeout ends still says how far it got.
        std::printf(" %ld configurations checked, %zu accepted, %zu to time\n", checked, accepted.size(),
                    (accepted.size() + stride - 1) / stride);
        std::vector<std::pair<float, cublasLtMatmulAlgo_t>> timed;
        for (size_t i = 0; i < accepted.size(); i += stride) {
            const float us = time(accepted[i]);
            if (us > 0.0f) timed.emplace_back(us, accepted[i]);
        }
        std::sort(timed.begin(), timed.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
        print("heuristic", heuristic, heuristic_us, s);
        for (size_t i = 0; i < timed.size() && i < 10; ++i) print("", timed[i].second, timed[i].first, s);
        // The five fastest again, each right after the heuristic's pick, three rounds: the card's clock drifts.
        for (int round = 0; round < 3; ++round)
            for (size_t i = 0; i < timed.size() && i < 5; ++i) {
                print("heuristic", heuristic, time(heuristic), s);
                print("again", timed[i].second, time(timed[i].second), s);
            }
        std::fflush(stdout);
        cublasLtMatmulPreferenceDestroy(pref);
        cublasLtMatrixLayoutDestroy(ld);
        cublasLtMatrixLayoutDestroy(lb);
        cublasLtMatrixLayoutDestroy(la);
        cublasLtMatmulDescDestroy(desc);
    }
    return 0;
}
