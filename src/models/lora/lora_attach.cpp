#include "models/lora/lora_attach.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "core/error.h"
#include "core/parallel.h"

namespace flux2 {

namespace {

struct Target {
    size_t linear = 0;
    int64_t row_begin = 0, rows = 0;
};

// Columns of one rank chunk of a branch: one A, and each term's B placed at its rows.
struct Chunk {
    const std::vector<float>* a = nullptr;
    int64_t rank = 0;
    struct Rows {
        const LoraTerm* term;
        int64_t row_begin;
        float scale;  // strength x alpha / rank
    };
    std::vector<Rows> rows;
};

// One layer's branch from its rank chunks (nothing when no adapter reaches it).
void build_branch(const LinearWeight& w, const std::vector<Chunk>& chunks, const std::string& label,
                  std::shared_ptr<const LoraBranch>& out) {
    if (chunks.empty()) return;
    auto br = std::make_shared<LoraBranch>();
    br->in_features = w.in_features;
    br->out_features = w.out_features;
    br->label = label;
    for (const Chunk& c : chunks) br->rank += c.rank;
    br->a.reserve(static_cast<size_t>(br->rank * w.in_features));
    br->b.assign(static_cast<size_t>(w.out_features * br->rank), 0.0f);
    int64_t col = 0;
    for (const Chunk& c : chunks) {
        br->a.insert(br->a.end(), c.a->begin(), c.a->end());
        for (const auto& r : c.rows) {
            const LoraTerm& t = *r.term;
            for (int64_t row = 0; row < t.out_features; ++row) {
                for (int64_t j = 0; j < c.rank; ++j) {
                    br->b[static_cast<size_t>((r.row_begin + row) * br->rank + col + j)] +=
                        r.scale * t.b[static_cast<size_t>(row * c.rank + j)];
                }
            }
        }
        col += c.rank;
    }
    out = std::move(br);
}

}  // namespace

std::vector<std::shared_ptr<const LoraBranch>> build_lora_branches(const std::vector<const LinearWeight*>& linears,
                                                                   const std::vector<ActiveLora>& active) {
    std::map<std::string, Target> targets;
    for (size_t i = 0; i < linears.size(); ++i) {
        for (const RowPart& part : linears[i]->row_parts()) targets[part.name] = Target{i, part.begin, part.count};
    }
    std::vector<std::vector<Chunk>> chunks(linears.size());
    std::vector<std::string> labels(linears.size());
    for (const ActiveLora& lora : active) {
        check(lora.adapter != nullptr, "LoRA '", lora.name, "' is not loaded");
        check(std::isfinite(lora.strength), "LoRA '", lora.name, "': strength ", lora.strength, " is not finite");
        const LoraAdapter& ad = *lora.adapter;
        std::set<size_t> touched;  // linears this adapter reaches
        for (const LoraTerm& t : ad.terms) {
            auto it = targets.find(t.module);
            check(it != targets.end(), ad.path, ": tensor '", t.key, "' targets ", t.module,
                  ", which this model does not have (a LoRA for another FLUX.2 model?)");
            const Target& target = it->second;
            const LinearWeight& w = *linears[target.linear];
            check(t.in_features == w.in_features && t.out_features == target.rows, ad.path, ": tensor '", t.key,
                  "' (rank ", t.rank, ") gives ", t.module, " [", t.out_features, ", ", t.in_features,
                  "], but the model's layer is [", target.rows, ", ", w.in_features,
                  "] (a LoRA for another FLUX.2 model?)");
            if (lora.strength == 0.0f) continue;
            // Terms with equal A share one rank chunk, B rows added: a fused BFL qkv on a fused q|k|v linear stays
            // rank r, not 3r (diffusers files repeat the shared A for to_q/to_k/to_v, so values are compared).
            std::vector<Chunk>& cs = chunks[target.linear];
            auto same_a = [&](const Chunk& c) { return c.rank == t.rank && (c.a == t.a.get() || *c.a == *t.a); };
            auto chunk = std::find_if(cs.begin(), cs.end(), same_a);
            if (chunk == cs.end()) chunk = cs.insert(cs.end(), Chunk{t.a.get(), t.rank, {}});
            chunk->rows.push_back({&t, target.row_begin, lora.strength * t.scale});
            if (touched.insert(target.linear).second) {
                labels[target.linear] +=
                    str(labels[target.linear].empty() ? "" : " + ", lora.name, " x", lora.strength);
            }
        }
    }

    // Each layer's branch on its own thread: switching adapters on dev builds about a gigabyte of them, and the time
    // goes into first touching that memory (bench/lora_attach_bench.cpp).
    std::vector<std::shared_ptr<const LoraBranch>> branches(linears.size());
    parallel_for(static_cast<int64_t>(linears.size()), 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) build_branch(*linears[i], chunks[i], labels[i], branches[i]);
    });
    return branches;
}

}  // namespace flux2
