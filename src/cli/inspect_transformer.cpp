// The transformer part of `flux2 inspect`: how the checkpoint binds as a FLUX.2 transformer and how each linear's
// quantization was resolved (docs/QUANTIZATION.md).
#include <algorithm>
#include <cstdio>

#include "cli/commands.h"
#include "cli/table.h"
#include "core/error.h"
#include "models/flux2/flux2_config.h"
#include "models/transformer_checkpoint.h"

namespace flux2::cli {

void print_transformer_quant(const std::string& path, bool table) {
    std::optional<TransformerCheckpoint> ckpt;
    try {
        ckpt.emplace(TransformerCheckpoint::open(path));
    } catch (const Error& e) {
        // Not every checkpoint is a transformer (VAE, text encoder): say why in one line and stop.
        const std::string what = e.what();
        std::printf("transformer: not readable as a FLUX.2 transformer: %s\n", what.substr(0, what.find('\n')).c_str());
        return;
    }
    const QuantConfig& q = ckpt->quant();
    std::printf("transformer: %s\n", ckpt->describe().c_str());
    try {
        const Flux2Config c = Flux2Config::for_checkpoint(*ckpt);
        std::printf("  architecture: %s (%s)\n", c.architecture_name().c_str(), c.summary().c_str());
    } catch (const Error& e) {
        std::printf("  architecture: not inferred: %s\n", e.what());
    }
    std::printf("  quantization: %s\n", q.summary().c_str());
    if (q.has_nvfp4()) {
        std::printf("  nvfp4 bytes: %s codes, %s scales (%s)\n", nibble_order_name(q.nibble_order),
                    scale_layout_name(q.scale_layout), q.layout_reason.c_str());
    }
    if (!table) return;
    std::vector<std::vector<std::string>> rows = {{"linear", "stored as", "shape", "format", "source", "reason"}};
    for (const auto& l : ckpt->linears()) {
        rows.push_back({l.module, l.checkpoint_module, shape_str(l.shape),
                        l.quant.label + (l.quant.dynamic_input_scale ? " (dynamic)" : ""),
                        quant_source_name(l.quant.source), l.quant.reason});
    }
    print_table(rows);
}

}  // namespace flux2::cli
