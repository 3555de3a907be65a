// Writing the generated image: PNG at several zlib levels (flux2 writes kPngZlibLevel), on a 1024x1024 image made
// to compress like a photograph (smooth shapes, texture at several scales, a little sensor noise), or on a real
// photograph: FLUX2_BENCH_IMAGE=photo.jpg (any PNG/JPEG, encoded at its own size). Counters: the file's bytes and
// megapixels per second.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdlib>
#include <random>
#include <vector>

#include "io/image.h"

namespace flux2 {
namespace {

// Value noise of one scale: a random grid every `cell` pixels, bilinearly interpolated.
std::vector<float> value_noise(int side, int cell, std::mt19937& rng) {
    const int n = side / cell + 2;
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> grid(static_cast<size_t>(n) * n), out(static_cast<size_t>(side) * side);
    for (float& g : grid) g = u(rng);
    for (int y = 0; y < side; ++y)
        for (int x = 0; x < side; ++x) {
            const float fy = static_cast<float>(y) / cell, fx = static_cast<float>(x) / cell;
            const int gy = static_cast<int>(fy), gx = static_cast<int>(fx);
            const float ty = fy - gy, tx = fx - gx;
            const float top = grid[gy * n + gx] * (1 - tx) + grid[gy * n + gx + 1] * tx;
            const float bottom = grid[(gy + 1) * n + gx] * (1 - tx) + grid[(gy + 1) * n + gx + 1] * tx;
            out[static_cast<size_t>(y) * side + x] = top * (1 - ty) + bottom * ty;
        }
    return out;
}

Image photo_like(int side) {
    std::mt19937 rng(20261202);
    Image img = Image::blank(side, side);
    std::normal_distribution<float> sensor(0.0f, 1.5f);
    for (int c = 0; c < 3; ++c) {
        const std::vector<float> coarse = value_noise(side, 128, rng), mid = value_noise(side, 24, rng),
                                 fine = value_noise(side, 4, rng);
        for (int y = 0; y < side; ++y)
            for (int x = 0; x < side; ++x) {
                const size_t i = static_cast<size_t>(y) * side + x;
                const float v = 128 + 90 * coarse[i] + 25 * mid[i] + 8 * fine[i] + sensor(rng);
                img.rgb[i * 3 + c] = static_cast<uint8_t>(std::lround(std::fmin(255.0f, std::fmax(0.0f, v))));
            }
    }
    return img;
}

const Image& bench_image() {
    static const Image img = [] {
        const char* path = std::getenv("FLUX2_BENCH_IMAGE");
        return path && *path ? read_image(path) : photo_like(1024);
    }();
    return img;
}

void BM_EncodePng(benchmark::State& state) {
    const Image& img = bench_image();
    const int level = static_cast<int>(state.range(0));
    size_t bytes = 0;
    for (auto _ : state) {
        const std::vector<uint8_t> png = encode_png(img, {}, level);
        bytes = png.size();
        benchmark::DoNotOptimize(png.data());
    }
    state.counters["bytes"] = static_cast<double>(bytes);
    state.counters["MP/s"] = benchmark::Counter(static_cast<double>(img.width) * img.height * 1e-6,
                                                benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EncodePng)->Arg(1)->Arg(kPngZlibLevel)->Arg(6)->Arg(9)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace flux2
