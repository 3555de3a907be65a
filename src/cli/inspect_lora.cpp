// The LoRA part of `flux2 inspect`: format, ranks and alphas, the layers and which FLUX.2 models the file fits.
#include <algorithm>
#include <cstdio>
#include <set>

#include "cli/commands.h"
#include "cli/table.h"
#include "core/error.h"
#include "models/lora/lora_adapter.h"
#include "models/lora/lora_fit.h"

namespace flux2::cli {

namespace {
std::string range(const std::set<std::string>& values) {
    std::string out;
    for (const std::string& v : values) out += str(out.empty() ? "" : ", ", v);
    return out;
}
}  // namespace

void print_lora(const std::string& path, bool table) {
    const LoraAdapter a = read_lora(path);
    std::set<std::string> ranks, alphas, scales;
    size_t with_alpha = 0;
    for (const LoraLayer& l : a.layers) {
        ranks.insert(std::to_string(l.a_shape[0]));
        alphas.insert(str(l.alpha));
        scales.insert(str(l.scale));
        with_alpha += l.alpha_given;
    }
    std::printf("lora: %s format, %zu layers (%zu modules), rank %s, alpha %s (%s), scale alpha/rank %s\n",
                a.format_label().c_str(), a.layers.size(), a.terms.size(), range(ranks).c_str(), range(alphas).c_str(),
                with_alpha == a.layers.size() ? "given"
                : with_alpha == 0 ? "none given: alpha = rank, as in BFL/ai-toolkit files, whose A holds alpha/rank"
                                  : "partly given",
                range(scales).c_str());
    if (a.skipped_text_encoder_tensors > 0) {
        std::printf("  text-encoder tensors skipped: %lld\n", static_cast<long long>(a.skipped_text_encoder_tensors));
    }
    std::string fits, misfits;
    for (const char* preset : {"dev", "klein-4b", "klein-9b"}) {
        if (auto why = lora_misfit(a, Flux2Config::preset(preset))) {
            misfits += str("\n    not ", preset, ": ", *why);
        } else {
            fits += str(fits.empty() ? "" : ", ", preset);
        }
    }
    std::printf("  fits: %s%s\n", fits.empty() ? "none of the FLUX.2 models dev, klein-4b, klein-9b" : fits.c_str(),
                fits.empty() ? misfits.c_str() : "");
    if (!table) return;
    std::vector<std::vector<std::string>> rows = {{"layer", "A", "B", "alpha", "scale", "modules"}};
    for (const LoraLayer& l : a.layers) {
        std::string modules;
        for (const std::string& m : l.modules) modules += str(modules.empty() ? "" : " ", m);
        rows.push_back({l.name, shape_str(l.a_shape), shape_str(l.b_shape), l.alpha_given ? str(l.alpha) : "(rank)",
                        str(l.scale), modules});
    }
    print_table(rows);
}

}  // namespace flux2::cli
