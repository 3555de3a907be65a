// Lab (issue 13, "GEMM efficiency"): is there a faster cuBLASLt configuration than the heuristic's for the model's FP8
// GEMMs? Same descriptor as src/backend/cuda/gemm_cublaslt.cpp (cublaslt_fp8.h). For that form the heuristic offers
// a single algorithm, so the backend's autotune has nothing to choose; this file varies that algorithm's
// configuration (tile, stages, cluster shape, custom option, split-K, CTA swizzle), keeps what cublasLtMatmulAlgoCheck
// accepts, times an even sample of it and prints the fastest next to the heuristic's pick, then the five fastest
// again, each right after the heuristic's pick (PERFORMANCE.md "The step at the power limit" has the results).
// Not part of the build; on the device machine:
//   nvcc -arch=sm_90a -O2 -std=c++17 bench/fp8_gemm_lab/cublaslt_configs.cu -lcublasLt -lpthread -o /tmp/fp8_configs
//   [QUICK=1 [CLUSTERS=1]] [RUNS=100] /tmp/fp8_configs [shape index ...]
// No index: every shape below. Checking all configurations of one shape takes minutes even on all cores; QUICK=1
// (tiles, stages, split-K) seconds. RUNS=100 times each configuration held at the card's power limit.
#include <algorithm>
#include <thread>
#include <vector>

#include "cublaslt_fp8.h"

namespace {
using namespace fp8_lab;

constexpr size_t kTimedSample = 800;  // configurations timed per shape, evenly spread over the accepted ones

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
                tflops(s, us));
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // whole lines through a pipe, even when a timeout ends the run
    std::vector<Shape> shapes;
    for (int i = 1; i < argc; ++i) shapes.push_back(kShapes[std::atoi(argv[i])]);
    if (shapes.empty()) shapes.assign(std::begin(kShapes), std::end(kShapes));

    cublasLtHandle_t handle = nullptr;
    check(cublasLtCreate(&handle), "cublasLtCreate");
    const Operands ops(shapes);
    const int runs = timed_runs();

    for (const Shape& s : shapes) {
        const CublasLtFp8 lt(handle, s, ops);
        auto time = [&](const cublasLtMatmulAlgo_t& algo) {
            return time_launches([&] { return lt.launch(algo) == CUBLAS_STATUS_SUCCESS; }, runs);
        };
        cublasLtMatmulAlgo_t offered[16];
        const int count = lt.heuristic(offered, 16);
        const cublasLtMatmulAlgo_t heuristic = offered[0];
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
                    if (cublasLtMatmulAlgoCheck(own, lt.desc, lt.la, lt.lb, lt.ld, lt.ld, &combos[i], &result) ==
                            CUBLAS_STATUS_SUCCESS &&
                        result.workspaceSize <= CublasLtFp8::kWorkspace)
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
    }
    return 0;
}
