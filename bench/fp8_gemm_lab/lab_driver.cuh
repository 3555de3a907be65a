// What the GEMM labs' drivers (main.cu, w4a8_main.cu; one per binary) share: an output compared with the reference
// output, and variants timed in rounds with the card held at its power limit.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cublaslt_fp8.h"

namespace fp8_lab {

static __device__ float lab_bf16(const unsigned short* p, size_t i) { return __uint_as_float(unsigned(p[i]) << 16); }

// max |x - y| and max |y| over n BF16 values, as float bits (non-negative floats order as their bits do)
static __global__ void max_difference(const unsigned short* x, const unsigned short* y, size_t n, unsigned* out) {
    float diff = 0.0f, ref = 0.0f;
    for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
        diff = fmaxf(diff, fabsf(lab_bf16(x, i) - lab_bf16(y, i)));
        ref = fmaxf(ref, fabsf(lab_bf16(y, i)));
    }
    atomicMax(out, __float_as_uint(diff));
    atomicMax(out + 1, __float_as_uint(ref));
}

// max |d - reference| / max |reference| over n BF16 values; `scratch` is two unsigned of device memory.
inline float relative_max_difference(const void* d, const void* reference, size_t n, unsigned* scratch) {
    check(cudaMemset(scratch, 0, 2 * sizeof(unsigned)), "cudaMemset");
    max_difference<<<1024, 256>>>(static_cast<const unsigned short*>(d), static_cast<const unsigned short*>(reference),
                                  n, scratch);
    unsigned host[2];
    check(cudaMemcpy(host, scratch, sizeof(host), cudaMemcpyDeviceToHost), "cudaMemcpy");
    float diff, ref;
    std::memcpy(&diff, &host[0], 4);
    std::memcpy(&ref, &host[1], 4);
    return diff / ref;
}

// Runs `launch` once into d, zeroed first, and prints how far d is from the reference output (cuBLASLt's), or why
// the configuration was refused; returns whether it ran.
inline bool compare_with_reference(const char* name, const std::function<bool(const char** why)>& launch, void* d,
                                   const void* reference, size_t n, unsigned* scratch) {
    const char* why = "";
    check(cudaMemset(d, 0, n * 2), "cudaMemset");
    if (!launch(&why) || cudaDeviceSynchronize() != cudaSuccess) {
        std::printf("  %-50s refused (%s)\n", name, why);
        cudaGetLastError();
        return false;
    }
    std::printf("  %-50s max |D - cuBLASLt's| / max |cuBLASLt's| = %.2e\n", name,
                relative_max_difference(d, reference, n, scratch));
    return true;
}

// The shapes named by their indices in `all` on the command line, or all of them.
template <size_t N>
std::vector<Shape> shapes_from_args(int argc, char** argv, const Shape (&all)[N]) {
    std::vector<Shape> shapes;
    for (int i = 1; i < argc; ++i) shapes.push_back(all[std::atoi(argv[i])]);
    if (shapes.empty()) shapes.assign(std::begin(all), std::end(all));
    return shapes;
}

// ROUNDS=N: how many rounds time_rounds runs (default 3).
inline int timed_rounds() { return std::getenv("ROUNDS") ? std::max(1, std::atoi(std::getenv("ROUNDS"))) : 3; }

inline float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? -1.0f : v[v.size() / 2];
}

struct Variant {
    std::string name;
    std::function<bool()> launch;
};

// One warm-up pass over all variants (up to the power limit), then `rounds` rounds of `runs` launches each, the
// first variant first in every round so that each sees the card at the same heat. Prints every variant's median, its
// TFLOP/s on `shape` and how far it is from the first's; returns (median us, name), fastest first.
inline std::vector<std::pair<float, std::string>> time_rounds(const std::vector<Variant>& variants, const Shape& shape,
                                                              int runs, int rounds) {
    std::map<std::string, std::vector<float>> us;
    for (const Variant& v : variants) time_launches(v.launch, runs);
    for (int round = 0; round < rounds; ++round)
        for (const Variant& v : variants) us[v.name].push_back(time_launches(v.launch, runs));
    std::vector<std::pair<float, std::string>> ranked;
    const float base = median(us[variants.front().name]);
    for (const Variant& v : variants) {
        const float m = median(us[v.name]);
        ranked.emplace_back(m, v.name);
        std::printf("  %-50s %9.1f us %5.0f TFLOP/s %+6.1f%%\n", v.name.c_str(), m, tflops(shape, m),
                    100.0 * (m - base) / base);
    }
    std::sort(ranked.begin(), ranked.end());
    return ranked;
}

}  // namespace fp8_lab
