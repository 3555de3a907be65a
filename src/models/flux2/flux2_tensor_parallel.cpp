// Flux2Transformer::set_tensor_parallel: the weight sharding of tensor parallelism (docs/CUDA.md "Several GPUs").
// Rank r of N keeps, in every block, the heads [r H/N, (r+1) H/N) and the MLP columns [r M/N, (r+1) M/N):
// column-parallel layers (Q/K/V, MLP-in, the fused single-block projection) keep those output rows of each of
// their packed parts, so the packing [q | k | v | gate | up] stays the same at 1/N the width; row-parallel layers
// (attention out, MLP out, the single block's out) keep the matching input columns, and their partial outputs are
// summed across the ranks (Flux2Transformer::residual). Embeddings, modulation and the output layer stay whole.
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

namespace {
// This rank's 1/ranks of the rows of each packed part (part i: sizes[i] rows from begins[i]), in the same order.
std::vector<ColumnRange> packed_row_ranges(const std::vector<int64_t>& begins, const std::vector<int64_t>& sizes,
                                           int rank, int ranks) {
    std::vector<ColumnRange> out;
    for (size_t i = 0; i < begins.size(); ++i) {
        const int64_t share = sizes[i] / ranks;
        out.push_back({begins[i] + rank * share, share});
    }
    return out;
}

// Those rows of w joined into one weight.
LinearWeight keep_rows(const LinearWeight& w, const std::vector<ColumnRange>& ranges) {
    std::vector<LinearWeight> parts;
    for (const ColumnRange& r : ranges) parts.push_back(slice_rows(w, r.begin, r.count, w.name));
    std::vector<const LinearWeight*> views;
    for (const LinearWeight& p : parts) views.push_back(&p);
    return parts.size() == 1 ? parts[0] : concat_rows(views, w.name);
}

// A layer as LoRA adapters address it: name, shape and row parts, no weights.
LinearWeight layer_outline(const LinearWeight& w) {
    LinearWeight o;
    o.name = w.name;
    o.out_features = w.out_features;
    o.in_features = w.in_features;
    o.parts = w.parts;
    return o;
}
}  // namespace

void Flux2Transformer::set_tensor_parallel(std::shared_ptr<Communicator> comm, std::shared_ptr<ForwardPeers> peers) {
    check(comm != nullptr, "set_tensor_parallel: no communicator");
    check(!tp_ && !ulysses_, "set_tensor_parallel: this model already runs in parallel (shard it once, right after ",
          "loading; for Ulysses x TP before set_sequence_parallel)");
    const int n = comm->size(), r = comm->rank();
    const int64_t H = config_.num_attention_heads, D = config_.inner_dim(), M = config_.mlp_hidden();
    check(H % n == 0 && M % n == 0, "tensor parallelism splits the attention heads and the MLP among the GPUs: ", n,
          " GPUs do not divide this model's ", H, " heads and MLP width ", M);
    const int64_t Da = D / n, Ma = M / n;
    // What every layer was and what this rank keeps of it, for LoRA branches (attach_loras).
    std::vector<LinearWeight*> linears = all_linears();
    std::map<const LinearWeight*, size_t> index;
    tp_whole_layers_.clear();
    for (size_t i = 0; i < linears.size(); ++i) {
        index[linears[i]] = i;
        tp_whole_layers_.push_back(layer_outline(*linears[i]));
    }
    tp_shards_.assign(linears.size(), TpShard{});
    auto rows = [&](LinearWeight& w, const std::vector<int64_t>& begins, const std::vector<int64_t>& sizes) {
        std::vector<ColumnRange> kept = packed_row_ranges(begins, sizes, r, n);
        w = keep_rows(w, kept);
        tp_shards_[index.at(&w)].rows = std::move(kept);
    };
    auto cols = [&](LinearWeight& w, std::vector<ColumnRange> kept) {
        w = select_columns(w, kept, w.name);
        tp_shards_[index.at(&w)].columns = std::move(kept);
    };
    for (DoubleBlock& b : double_blocks_) {
        for (std::vector<LinearWeight>* qkv : {&b.qkv, &b.add_qkv}) {
            if (qkv->size() == 1) {
                rows((*qkv)[0], {0, D, 2 * D}, {D, D, D});
            } else {
                for (LinearWeight& w : *qkv) rows(w, {0}, {D});
            }
        }
        cols(b.to_out, {{r * Da, Da}});
        cols(b.to_add_out, {{r * Da, Da}});
        rows(b.ff_in, {0, M}, {M, M});
        rows(b.ff_context_in, {0, M}, {M, M});
        cols(b.ff_out, {{r * Ma, Ma}});
        cols(b.ff_context_out, {{r * Ma, Ma}});
    }
    for (SingleBlock& b : single_blocks_) {
        rows(b.to_qkv_mlp, {0, D, 2 * D, 3 * D, 3 * D + M}, {D, D, D, M, M});
        cols(b.to_out, {{r * Da, Da}, {D + r * Ma, Ma}});
    }
    tp_ = std::move(comm);
    peers_ = std::move(peers);
    replays_.clear();
    log_info("tensor parallel rank ", r, " of ", n, ": ", H / n, " of ", H, " heads, ", Ma, " of ", M,
             " MLP columns per block");
    // Adapters set before the split are cut the same way.
    if (!loras_.empty()) attach_loras(loras_);
}

}  // namespace flux2
