#pragma once
// Several devices for one image from one caller: ranks 1..N-1 of a Ulysses, tensor-parallel or CFG group each run in
// their own thread with their own backend and copy of the weights, behind rank 0's Flux2Transformer, so the pipeline
// and the server keep talking to one model (docs/CUDA.md "Several GPUs"). A rank's thread makes its backend, so a GPU
// rank's CUDA calls all come from the thread whose current device is its GPU.
#include <functional>
#include <memory>

#include "backend/backend.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

// Loads the model a rank runs on `backend` (each rank reads the weights itself, on its own thread).
using RankLoader = std::function<Flux2Transformer(Backend&)>;

enum class Parallelism {
    ulysses,  // sequence parallel: weights replicated, tokens sharded (Flux2Transformer::set_sequence_parallel)
    tensor,   // tensor parallel: heads and MLP columns sharded (Flux2Transformer::set_tensor_parallel)
    cfg,  // true CFG's unconditional forward on rank 1 beside the conditional one (Flux2Transformer::forward_guided)
    // Both: the ranks as a grid of size / tp rows of tp ranks. Each row is a tensor-parallel group (one token shard,
    // the weights split tp ways); each column a Ulysses group (the same heads, size / tp token shards). Rank r is
    // row r / tp, column r % tp.
    ulysses_tp,
};

// Makes ranks 1..size-1 (rank r on make_backend(options_of(r)), its model from `load`), joins them and `rank0`
// (already loaded) into one communicator group of rank0's device kind (ulysses_tp: one per row and one per column,
// `tp` ranks a row), splits the model among them as `mode` says, and makes rank0's forward drive them all. `cfg`
// needs size 2 and no communicator: rank 1 is a whole replica that runs the unconditional forward of rank 0's
// forward_guided.
// The group lives as long as rank0's model; options_of and load are called only before this returns. Fails, with
// every started thread stopped, if a rank fails to load.
void start_rank_group(Flux2Transformer& rank0, int size, Parallelism mode,
                      const std::function<BackendOptions(int)>& options_of, const RankLoader& load, int tp = 0);

}  // namespace flux2
