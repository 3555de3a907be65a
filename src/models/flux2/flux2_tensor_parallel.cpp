// Flux2Transformer::set_tensor_parallel: the weight sharding of tensor parallelism (docs/CUDA.md "Several GPUs").
// Rank r of N keeps, in every block, the heads [r H/N, (r+1) H/N) and the MLP columns [r M/N, (r+1) M/N):
// column-parallel layers (Q/K/V, MLP-in, the fused single-block projection) keep those output rows of each of
// their packed parts, so the packing [q | k | v | gate | up] stays the same at 1/N the width; row-parallel layers
// (attention out, MLP out, the single block's out) keep the matching input columns, and their partial outputs are
// summed across the ranks (Flux2Transformer::residual). Embeddings, modulation and the output layer stay whole.
#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

namespace {
// This rank's 1/ranks of the rows of each packed part (part i: sizes[i] rows from begins[i]), joined into one
// weight in the same order.
LinearWeight packed_rows(const LinearWeight& w, const std::vector<int64_t>& begins, const std::vector<int64_t>& sizes,
                         int rank, int ranks) {
    std::vector<LinearWeight> parts;
    for (size_t i = 0; i < begins.size(); ++i) {
        const int64_t share = sizes[i] / ranks;
        parts.push_back(slice_rows(w, begins[i] + rank * share, share, w.name));
    }
    std::vector<const LinearWeight*> views;
    for (const LinearWeight& p : parts) views.push_back(&p);
    return parts.size() == 1 ? parts[0] : concat_rows(views, w.name);
}
}  // namespace

void Flux2Transformer::set_tensor_parallel(std::shared_ptr<Communicator> comm, std::shared_ptr<ForwardPeers> peers) {
    check(comm != nullptr, "set_tensor_parallel: no communicator");
    check(!tp_ && !ulysses_, "set_tensor_parallel: this model already runs in parallel (shard it once, right after ",
          "loading; for Ulysses x TP before set_sequence_parallel)");
    check(loras_.empty(), kNoLorasWithTensorParallelism);
    const int n = comm->size(), r = comm->rank();
    const int64_t H = config_.num_attention_heads, D = config_.inner_dim(), M = config_.mlp_hidden();
    check(H % n == 0 && M % n == 0, "tensor parallelism splits the attention heads and the MLP among the GPUs: ", n,
          " GPUs do not divide this model's ", H, " heads and MLP width ", M);
    const int64_t Da = D / n, Ma = M / n;
    auto cols = [&](const LinearWeight& w, std::vector<ColumnRange> ranges) {
        return select_columns(w, ranges, w.name);
    };
    for (DoubleBlock& b : double_blocks_) {
        for (std::vector<LinearWeight>* qkv : {&b.qkv, &b.add_qkv}) {
            if (qkv->size() == 1) {
                (*qkv)[0] = packed_rows((*qkv)[0], {0, D, 2 * D}, {D, D, D}, r, n);
            } else {
                for (LinearWeight& w : *qkv) w = packed_rows(w, {0}, {D}, r, n);
            }
        }
        b.to_out = cols(b.to_out, {{r * Da, Da}});
        b.to_add_out = cols(b.to_add_out, {{r * Da, Da}});
        b.ff_in = packed_rows(b.ff_in, {0, M}, {M, M}, r, n);
        b.ff_context_in = packed_rows(b.ff_context_in, {0, M}, {M, M}, r, n);
        b.ff_out = cols(b.ff_out, {{r * Ma, Ma}});
        b.ff_context_out = cols(b.ff_context_out, {{r * Ma, Ma}});
    }
    for (SingleBlock& b : single_blocks_) {
        b.to_qkv_mlp = packed_rows(b.to_qkv_mlp, {0, D, 2 * D, 3 * D, 3 * D + M}, {D, D, D, M, M}, r, n);
        b.to_out = cols(b.to_out, {{r * Da, Da}, {D + r * Ma, Ma}});
    }
    tp_ = std::move(comm);
    peers_ = std::move(peers);
    replays_.clear();
    log_info("tensor parallel rank ", r, " of ", n, ": ", H / n, " of ", H, " heads, ", Ma, " of ", M,
             " MLP columns per block");
}

}  // namespace flux2
