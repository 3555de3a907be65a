// Tokenizer speed: a 512-token FLUX.2 prompt through the Qwen3 (klein) and Mistral Tekken (dev) templates, with
// the BPE cache warm (a prompt seen before, or common words) and cold (every piece merged from scratch), and the
// cost of loading Qwen3's tokenizer.json.gz.
#include <benchmark/benchmark.h>

#include <string>

#include "models/tokenizer/chat_template.h"
#include "models/tokenizer/tokenizer.h"

namespace flux2 {
namespace {

const Tokenizer& qwen3() {
    static const Tokenizer tok = Tokenizer::load(std::string(FLUX2_TEST_DATA) + "/qwen3-tokenizer");
    return tok;
}

const Tokenizer& mistral() {
    static const Tokenizer tok = Tokenizer::load(std::string(FLUX2_TEST_DATA) + "/mistral-tekken-tokenizer");
    return tok;
}

// A long, varied image description (punctuation, digits, a little non-ASCII): about 520 Qwen3 tokens.
std::string long_prompt() {
    const std::string scene =
        "A sprawling cyberpunk night market in the rain, seen from a low angle: neon signs in magenta and teal "
        "reflect on wet cobblestones, steam rises from food stalls selling ramen, dumplings and grilled squid, and "
        "a crowd of people with transparent umbrellas walks past. In the foreground, an elderly street vendor with "
        "a weathered face and round glasses hands a paper cup of tea to a young courier wearing a yellow raincoat "
        "and a scuffed helmet with the number 27 stencilled on it. ";
    const std::string style =
        "Shot on 35mm film, f/1.8, shallow depth of field, cinematic lighting with soft rim light, volumetric fog, "
        "bokeh from distant lanterns, rich colour grading, photorealistic, 8k, highly detailed textures. ";
    const std::string details =
        "Above the stalls hang hand-painted banners reading \"café 深夜食堂\" and \"OPEN 24/7\", a tangle of cables "
        "and paper lanterns, and a small shrine with an orange cat sleeping next to a bowl of coins (¥100, ¥500). ";
    return scene + style + details + scene + details + style + details;
}

// Times encode_prompt_ids of the long prompt (the BPE cache cleared before each run when `cold`).
void time_prompt_ids(benchmark::State& state, const Tokenizer& tok, TemplateKind kind, bool cold) {
    const std::string prompt = long_prompt();
    std::vector<int32_t> mask;
    for (auto _ : state) {
        if (cold) {
            state.PauseTiming();
            tok.clear_cache();
            state.ResumeTiming();
        }
        benchmark::DoNotOptimize(encode_prompt_ids(tok, kind, prompt, 512, &mask));
    }
}

void BM_Qwen3PromptIds512(benchmark::State& state, bool cold) {
    const Tokenizer& tok = qwen3();
    time_prompt_ids(state, tok, TemplateKind::qwen3, cold);
    const std::string prompt = long_prompt();
    state.counters["real_tokens"] =
        static_cast<double>(tok.encode(apply_chat_template(tok, TemplateKind::qwen3, prompt)).size());
    state.counters["chars"] = static_cast<double>(prompt.size());
}
BENCHMARK_CAPTURE(BM_Qwen3PromptIds512, warm_cache, false)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Qwen3PromptIds512, cold_cache, true)->Unit(benchmark::kMicrosecond);

void BM_MistralPromptIds512(benchmark::State& state, bool cold) {
    time_prompt_ids(state, mistral(), TemplateKind::mistral, cold);
}
BENCHMARK_CAPTURE(BM_MistralPromptIds512, warm_cache, false)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_MistralPromptIds512, cold_cache, true)->Unit(benchmark::kMicrosecond);

void BM_Qwen3Load(benchmark::State& state) {
    for (auto _ : state) benchmark::DoNotOptimize(Tokenizer::load(std::string(FLUX2_TEST_DATA) + "/qwen3-tokenizer"));
}
BENCHMARK(BM_Qwen3Load)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace flux2
