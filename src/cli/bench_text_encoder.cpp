#include "cli/bench_text_encoder.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "core/timing.h"
#include "models/text_encoder/decoder_random_weights.h"
#include "models/text_encoder/text_encoder.h"

namespace flux2::cli {

namespace {
WeightFormat random_format(const std::string& name) {
    if (name == "bf16") return WeightFormat::dense;
    if (name == "fp8") return WeightFormat::fp8;
    if (name == "fp4") return WeightFormat::nvfp4;
    fail("--text-encoder-precision: expected bf16, fp8 or fp4, got '", name, "'");
}

// One prompt of `tokens` ids, all attended (the cost of a prompt padded to max_sequence_length is the same).
TokenBatch prompt_tokens(int64_t tokens, int64_t vocab) {
    TokenBatch t;
    t.batch = 1;
    t.length = tokens;
    for (int64_t i = 0; i < tokens; ++i) {
        t.ids.push_back((i * 7919 + 1) % vocab);
        t.attention_mask.push_back(1);
    }
    return t;
}
}  // namespace

void run_text_encoder_bench(const TextEncoderBench& b) {
    check(!b.formats.empty(), "--text-encoder-precision: give at least one of bf16, fp8, fp4");
    check(b.tokens >= 1, "--text-tokens must be at least 1, got ", b.tokens);
    check(b.repeats >= 1, "--repeat must be at least 1, got ", b.repeats);
    for (const std::string& name : b.formats) random_format(name);  // refuses an unknown one before any work
    const DecoderConfig config = DecoderConfig::preset(b.preset);
    const std::vector<int64_t> layers = flux2_hidden_layers(config.family);
    const TokenBatch tokens = prompt_tokens(b.tokens, config.vocab_size);
    std::printf("%-16s %-6s %7s %8s %8s %12s %9s  %s\n", "encoder", "format", "layers", "tokens", "load s", "encode s",
                "peak GB", "linear paths (one encode)");
    for (const std::string& name : b.formats) {
        const WeightFormat format = random_format(name);
        try {
            auto backend = make_backend(b.backend);
            const auto t0 = std::chrono::steady_clock::now();
            RandomDecoderWeights weights(format, b.seed);
            const TextEncoder te = TextEncoder::load(weights, config, layers, *backend);
            te.encode(tokens);  // uploads (and converts) every weight
            const double load = seconds_since(t0);
            backend->reset_path_counts();
            std::vector<double> times;
            for (int i = 0; i < b.repeats; ++i) {
                const auto t1 = std::chrono::steady_clock::now();
                te.encode(tokens);
                times.push_back(seconds_since(t1));
            }
            std::sort(times.begin(), times.end());
            const std::string paths = backend->path_summary();
            std::printf("%-16s %-6s %7lld %8lld %8.1f %12.4f %9.2f  %s\n", b.preset.c_str(), name.c_str(),
                        static_cast<long long>(layers.back()), static_cast<long long>(b.tokens), load,
                        times[times.size() / 2], backend->peak_memory_bytes() / 1e9, paths.c_str());
            if (b.profile) {
                backend->start_profile();
                te.encode(tokens);
                std::printf("%s", backend->profile_report().c_str());
            }
        } catch (const std::exception& e) {
            const std::string what = e.what();
            std::printf("%-16s %-6s failed: %s\n", b.preset.c_str(), name.c_str(),
                        what.substr(0, what.find('\n')).c_str());
        }
        std::fflush(stdout);
    }
}

}  // namespace flux2::cli
