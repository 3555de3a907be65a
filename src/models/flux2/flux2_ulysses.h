#pragma once
// Ulysses sequence parallelism for the FLUX.2 transformer (docs/CUDA.md "Several GPUs"): each of N ranks holds a
// contiguous share of the text tokens and of the image tokens (its local joint sequence is [its text, its image])
// and all the weights. Everything but attention is per token, so only attention talks: one all-to-all turns
// [local tokens, all heads] of Q, K and V into [all tokens, H/N heads], attention runs on those heads, and one
// all-to-all turns the result back. The gathered sequence is ordered [text_0, image_0, text_1, image_1, ...]: joint
// attention is unmasked and non-causal, so that order gives the same result as [text, image].
#include <cstdint>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "models/lora/lora_attach.h"
#include "tensor/tensor.h"

namespace flux2 {

struct Flux2Inputs;

// Rank r's share of n items split `ranks` ways: the first n % ranks ranks take one more.
struct Shard {
    int64_t begin, count;
};
Shard shard_of(int64_t n, int ranks, int r);

// The ranks other than 0 of a group whose rank 0 is driven by the caller (the pipeline sees one model): rank 0's
// forward hands them its inputs before its own step and waits for them after (flux2_rank_group.h).
class ForwardPeers {
public:
    virtual ~ForwardPeers() = default;
    virtual void begin_forward(const Flux2Inputs& in) = 0;
    // Waits for every peer's step; rethrows the first failure.
    virtual void end_forward() = 0;
    // Rank 0 leaves the group: every peer leaves too (Flux2Transformer::leave_rank_group), without waiting here.
    virtual void leave() = 0;
    // Every peer's model runs later forwards with these adapters (Flux2Transformer::set_loras, on the peer's own
    // thread); returns when all have, rethrowing the first failure.
    virtual void set_loras(const std::vector<ActiveLora>& loras) = 0;
};

class UlyssesAttention {
public:
    // Fails unless `heads` divides among the ranks (each rank attends over whole heads).
    UlyssesAttention(std::shared_ptr<Communicator> comm, int64_t heads, int64_t head_dim);
    Communicator& comm() const { return *comm_; }

    // This rank's inputs: its text and image token ranges of every token-indexed input, with their ids (so the
    // RoPE tables are computed for its tokens only). Fails when a stream has fewer tokens than ranks. The attention
    // calls that follow exchange the shares of this split.
    Flux2Inputs shard_inputs(const Flux2Inputs& in, Backend& be);

    // Backend::attention_into over the whole sequence from this rank's tokens: q, k [B, Ls, H, Dh], v [B, Ls, Cv]
    // (H*Dh columns from v_col) -> the H*Dh columns from out_col of out [B, Ls, Co], Ls = this rank's tokens.
    void attention_into(Backend& be, const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out,
                        int64_t out_col) const;

    // Every rank's image rows of the velocity [B, Li_r, C] (on the backend) -> the whole [B, Li, C] on the host.
    Tensor gather_image(Backend& be, const Tensor& local) const;

private:
    int64_t local_tokens(int r) const;  // rank r's joint tokens (text + image)

    std::shared_ptr<Communicator> comm_;
    int64_t heads_, head_dim_;
    int64_t text_tokens_ = 0, image_tokens_ = 0;
};

}  // namespace flux2
