#pragma once
// Flux2Transformer2DModel (FLUX2_SPEC.md §1) on any Backend. Weights are bound by internal (diffusers) name and
// kept in their checkpoint format; the backend decides how each linear runs.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "models/flux2/flux2_config.h"
#include "models/flux2/flux2_ulysses.h"
#include "models/lora/lora_attach.h"
#include "quant/linear_weight.h"
#include "tensor/tensor.h"

namespace flux2 {

class WeightSource;

struct Flux2Inputs {
    // [B, Li, in_channels] (packed latents, then reference tokens): host F32, or an F32 state on the model's backend
    // (Backend::upload_state), which the pipeline keeps there for a whole generation.
    Tensor hidden_states;
    // [B, Lt, joint_attention_dim]: host F32, or already on the model's backend (Flux2Transformer::backend().upload),
    // which saves its upload at every step (the pipeline uploads the prompt embeddings once).
    Tensor encoder_hidden_states;
    std::vector<float> timestep;                 // [B] sigma in [0, 1] (the model multiplies by 1000)
    std::optional<std::vector<float>> guidance;  // [B]; required iff the model has a guidance embedding
    Tensor img_ids;                              // [Li, 4] (t, h, w, l)
    Tensor txt_ids;                              // [Lt, 4]
};

// A second device that runs the unconditional forward of true CFG while this model runs the conditional one (CFG
// parallelism, flux2_rank_group.h).
class GuidancePeer {
public:
    virtual ~GuidancePeer() = default;
    virtual void begin_uncond(const Flux2Inputs& uncond) = 0;
    // Waits for it; its velocity as a host F32 tensor; rethrows its failure.
    virtual Tensor end_uncond() = 0;
    // The second device's model runs with these adapters too (as ForwardPeers::set_loras).
    virtual void set_loras(const std::vector<ActiveLora>& loras) = 0;
};

class Flux2Transformer {
public:
    // Binds every weight of the model described by `config` (each tensor checked against its expected shape) and
    // fails on any tensor left unclaimed.
    static Flux2Transformer load(WeightSource& weights, const Flux2Config& config, Backend& backend);
    static Flux2Transformer load(const std::string& path, Backend& backend);
    // Rank 0 of a group (the one with peers) leaves it with everyone; see leave_rank_group.
    ~Flux2Transformer();
    Flux2Transformer(Flux2Transformer&&) noexcept = default;
    Flux2Transformer& operator=(Flux2Transformer&&) = delete;  // would drop a group without leaving it

    const Flux2Config& config() const { return config_; }
    Backend& backend() const { return *backend_; }

    // Returns the velocity [B, Li, out_channels] where the hidden states are: a host F32 tensor, or a tensor of the
    // backend's activation type that the caller owns (its Euler update reads it there). On a backend that can record
    // (Backend::can_record, CUDA graphs), the first call of each input shape runs op by op and records the step;
    // later calls of that shape refill its inputs and replay it.
    Tensor forward(const Flux2Inputs& inputs) const;
    // Off: every call runs op by op (op profiling, debugging).
    void set_replay(bool on) { replay_ = on; }

    // Checks shapes of inputs (named errors) without running anything.
    void validate(const Flux2Inputs& inputs) const;

    // Runs every later forward with exactly these adapters (empty: none), each linear's branches joined into one
    // (quant/lora_branch.h); the base weights are never touched, so switching costs no reload. Everything is checked
    // first: on an Error (a LoRA for another model, a key naming no layer) the model keeps its previous adapters.
    // Rank 0 of a group passes them on to the other ranks; under tensor parallelism each rank keeps the part of
    // every branch its shard needs (B's rows of a column-parallel layer, A's columns of a row-parallel one).
    void set_loras(const std::vector<ActiveLora>& loras);
    const std::vector<ActiveLora>& loras() const { return loras_; }

    // Runs every later forward as one rank of a Ulysses group (flux2_ulysses.h): each rank calls forward with the
    // same full inputs from its own thread, computes its share of the tokens, and returns the whole velocity;
    // with `peers`, this rank's forward starts theirs. nullptr: this model alone. Fails unless the group's size
    // divides the head count. After set_tensor_parallel (Ulysses x TP), the group is this rank's column of the
    // grid: the ranks holding the same heads, each with its own tokens, over the heads this rank keeps.
    void set_sequence_parallel(std::shared_ptr<Communicator> comm, std::shared_ptr<ForwardPeers> peers = nullptr);

    // Runs every later forward as one rank of a tensor-parallel group: each rank keeps 1/N of every block's
    // attention heads and MLP columns (column-parallel Q/K/V and MLP-in, row-parallel out projections, the fused
    // single-block projection split the same way) and one all-reduce joins each pair; each rank calls forward with
    // the same inputs from its own thread and returns the whole velocity; with `peers`, this rank's forward starts
    // theirs. Shards the weights now (call it once, right after load); fails unless N divides the heads and the MLP
    // width.
    void set_tensor_parallel(std::shared_ptr<Communicator> comm, std::shared_ptr<ForwardPeers> peers = nullptr);

    // Ends this rank's part in its group: drops the recorded steps (a CUDA graph holds its NCCL calls, and NCCL
    // does not let a communicator go while one is alive), then, with peers, tells them to leave too, then closes
    // the communicator, which returns once every rank has closed (Communicator::close). Every rank calls it at
    // about the same time; rank 0's destructor does, and the rank threads do when it tells them. The model does
    // not forward afterwards. Does nothing outside a group.
    void leave_rank_group();
    // A rank failed mid-step: makes every rank's waiting and later exchanges fail with `why` (Communicator::abort),
    // so that none waits forever for the failed one. Any rank's thread may call it; the group is unusable afterwards
    // (later forwards fail at once). Does nothing outside a group.
    void abort_rank_group(const std::string& why) const;

    // Gives the device copies of the weights back (--offload model): drops the recorded steps and every linear's
    // prepared form; the next forward prepares them again from the host copies (and records anew). Returns how many
    // linears held one. Refused in a rank group (the other ranks keep theirs).
    int release_device_weights();
    // --offload layers: from now on each block's weights reach the device only around that block's ops, copied in
    // while the blocks before compute (Backend::stream_layers), except whole blocks that fit the options' resident
    // budget of device memory; the recorded steps are dropped. Returns what streams for the log ("" where the
    // backend has nothing to stream). Refused in a rank group.
    std::string stream_block_weights(const LayerStreamOptions& options = {});
    // --offload layers: gives the streaming buffers' device memory back until the next forward maps it again
    // (LayerStream::release_buffers): for the VAE decode and the next prompt's encoding. Nothing without a stream.
    void release_stream_buffers();
    // --offload model: page-locks the weights' host bytes so that preparing them again after each release copies at
    // full bus speed (Backend::pin_host_weights). Returns what was locked, for the log ("" where nothing was).
    std::string pin_host_weights();

    // The steps' timestep conditioning, computed ahead: for each of `timesteps` (sigmas, as Flux2Inputs::timestep)
    // with a batch of `batch` and, for dev, `guidance`, the timestep (and guidance) embedding and the modulation made
    // from it, by the ops a step runs, so with the same values, kept on the device. A later forward whose timestep
    // and guidance match one of them uses it instead of computing it. Under --offload layers the conditioning
    // linears then give their device copies back (dev: ~1.4 GB of BF16 weights that a step no longer needs) until
    // the next call uploads them again. Each call replaces the previous one's; set_loras, release_device_weights and
    // stream_block_weights drop them. Nothing in a rank group (every rank computes its own).
    void precompute_conditioning(const std::vector<float>& timesteps, const std::optional<float>& guidance,
                                 int64_t batch) const;

    // The velocities for the conditional and the unconditional inputs of true CFG (klein base): at the same time on
    // two devices when a guidance peer is set (set_guidance_peer), else one after the other on this one.
    std::pair<Tensor, Tensor> forward_guided(const Flux2Inputs& cond, const Flux2Inputs& uncond) const;
    void set_guidance_peer(std::shared_ptr<GuidancePeer> peer) { guidance_peer_ = std::move(peer); }

private:
    Flux2Transformer() = default;  // load() makes one

    struct DoubleBlock {
        // Q, K, V projections of each stream: one [3D, D] weight when the three join exactly (concat_rows), else
        // the three separately; the first output column of q, k, v is then 0, D, 2D of one output or 0 of each.
        std::vector<LinearWeight> qkv, add_qkv;
        LinearWeight to_out, to_add_out;
        LinearWeight ff_in, ff_out, ff_context_in, ff_context_out;
        Tensor norm_q, norm_k, norm_added_q, norm_added_k;  // [head_dim] on the backend
    };
    struct SingleBlock {
        LinearWeight to_qkv_mlp, to_out;
        Tensor norm_q, norm_k;
    };

    // What a step's timestep (and guidance) make: the modulation of the double blocks' image and text streams
    // [B, 6D], of the single blocks [B, 3D] and of the final norm [B, 2D].
    struct Conditioning {
        Tensor mod_img, mod_txt, mod_single, mod_out;
        bool defined() const { return mod_img.defined(); }
    };
    // A step's inputs on the backend: everything the host computes (embeddings of the timestep and guidance, RoPE
    // tables) is uploaded before the first op, so a recorded step has no host work inside.
    struct StepInputs {
        Tensor hidden_states, encoder_hidden_states;  // [B, Li, in_channels], [B, Lt, joint_attention_dim]
        Tensor timestep_proj, guidance_proj;          // [B, timestep_guidance_channels]; guidance: dev only
        Conditioning conditioning;                    // instead of the projections: copied from precomputed ones
        Tensor cos, sin;                              // [Lt + Li, head_dim], text first
    };
    // A recorded step for one input shape: its input and output tensors and the recording.
    struct Replay {
        StepInputs inputs;
        Tensor output;
        std::shared_ptr<RecordedOps> ops;
        Tensor ids;  // host [Lt + Li, 4] position ids of the RoPE tables in `inputs` (refilled only when they change)
    };
    struct HostStepInputs;
    // Whether t lives on a backend (the pipeline's latents state, the prompt embeddings) rather than on the host.
    static bool on_backend(const Tensor& t) { return t.device() != Device::cpu; }
    HostStepInputs host_inputs(const Flux2Inputs& in) const;
    void compute_rope(HostStepInputs& in) const;
    // Backend tensors of the shapes of `in` (after compute_rope), filled by refill_inputs.
    StepInputs allocate_inputs(const HostStepInputs& in) const;
    // Overwrites dst with `in`; the RoPE tables only when computed (compute_rope).
    void refill_inputs(const HostStepInputs& in, StepInputs& dst) const;
    // The step on the backend, from uploaded inputs to `out` [B, Li, out_channels] (made by the caller).
    void run_step(const StepInputs& in, Tensor& out) const;
    // forward without starting the peers: this rank's part (and, under Ulysses, the gathered velocity).
    Tensor this_rank_forward(const Flux2Inputs& in) const;
    Flux2Inputs with_host_state(const Flux2Inputs& in) const;
    // run_step on these (validated) inputs, recorded and replayed per `shape` where the backend can: the velocity
    // [B, Li, out_channels] on the backend.
    Tensor step(const Flux2Inputs& in, const std::tuple<int64_t, int64_t, int64_t>& shape) const;
    // x += gate * linear(in, w), summed across the ranks under tensor parallelism (w row-parallel).
    void residual(Tensor& x, const Tensor& gate, const Tensor& in, const LinearWeight& w) const;
    int64_t tp_size() const { return tp_ ? tp_->size() : 1; }
    // One rank of a sequence-, tensor- or CFG-parallel group (the offloading modes are for one device).
    bool in_rank_group() const { return peers_ || ulysses_ || tp_ || guidance_peer_; }
    // Backend::attention_into, across the ranks under sequence parallelism.
    void attend(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out, int64_t out_col) const;
    // The q or k buffer of one attention (Backend::attention_qk_buffer, BF16 under sequence parallelism).
    Tensor qk_buffer(const Shape& shape, const std::vector<const Tensor*>& norm_weights) const;
    // The host projection [B, timestep_guidance_channels] of sigmas (or guidance scales), scaled by 1000.
    Tensor projection(const std::vector<float>& values) const;
    // The conditioning of a step from its projections, or its precomputed one (flux2_conditioning.cpp).
    Conditioning conditioning(const StepInputs& in) const;
    const Conditioning* precomputed_conditioning(const Flux2Inputs& in) const;
    void copy_conditioning(const Conditioning& src, Conditioning& dst) const;
    // The linears only the conditioning uses: the timestep and guidance embedders and the modulation linears.
    std::vector<const LinearWeight*> conditioning_linears() const;
    void double_block(const DoubleBlock& blk, Tensor& img, Tensor& txt, const Tensor& mod_img, const Tensor& mod_txt,
                      const Tensor& cos, const Tensor& sin) const;
    void single_block(const SingleBlock& blk, Tensor& h, const Tensor& mod, const Tensor& cos, const Tensor& sin) const;
    // Writes one stream's normalized, rotated q and k into tokens [tok, tok + L) of the joint q and k, and its v
    // there in `joint`: [B, L, 3D] rows of the fused [q | k | v] projections (v at column 2D), or [B, L, D] of v.
    void project_qkv(const std::vector<LinearWeight>& qkv, const Tensor& x, const Tensor& norm_q, const Tensor& norm_k,
                     const Tensor& cos, const Tensor& sin, Tensor& q, Tensor& k, Tensor& joint, int64_t tok) const;

    std::vector<LinearWeight*> all_linears();
    // Each block's linears, the double blocks first (the groups of --offload layers, in all_linears' order).
    std::vector<std::vector<LinearWeight*>> block_linears();
    // set_loras without passing the adapters on to the peers: builds the branches against the whole layers and,
    // under tensor parallelism, keeps this rank's part of each.
    void attach_loras(const std::vector<ActiveLora>& loras);

    // Tensor parallelism: what a linear kept of the whole layer, to cut LoRA branches the same way. Rows: ranges
    // of the whole layer's outputs, one after another (column-parallel); columns: ranges of its inputs
    // (row-parallel); both empty: the layer is whole on every rank.
    struct TpShard {
        std::vector<ColumnRange> rows, columns;
    };
    // One per all_linears() entry, recorded by set_tensor_parallel: the layer before sharding (name, shape and row
    // parts only, no weights) and what this rank kept.
    std::vector<LinearWeight> tp_whole_layers_;
    std::vector<TpShard> tp_shards_;

    Flux2Config config_;
    Backend* backend_ = nullptr;
    std::vector<ActiveLora> loras_;
    LinearWeight x_embedder_, context_embedder_;
    LinearWeight time_linear_1_, time_linear_2_, guidance_linear_1_, guidance_linear_2_;
    LinearWeight mod_img_, mod_txt_, mod_single_;
    std::vector<DoubleBlock> double_blocks_;
    std::vector<SingleBlock> single_blocks_;
    LinearWeight norm_out_, proj_out_;
    bool replay_ = true;
    // By (B, Li, Lt) of the whole sequence: under sequence parallelism a rank's share alone does not fix the sizes
    // its recorded exchanges move.
    mutable std::map<std::tuple<int64_t, int64_t, int64_t>, Replay> replays_;
    // precompute_conditioning's, by a step's timestep values followed by its guidance values.
    mutable std::map<std::vector<float>, Conditioning> conditioning_cache_;
    std::shared_ptr<UlyssesAttention> ulysses_;
    std::shared_ptr<ForwardPeers> peers_;
    std::shared_ptr<Communicator> tp_;
    std::shared_ptr<GuidancePeer> guidance_peer_;
    // Last, so that they go first: they hold host weights page-locked.
    std::unique_ptr<LayerStream> layer_stream_;
    std::unique_ptr<HostPinning> host_pinning_;
    std::unique_ptr<HostPinning> conditioning_pinning_;  // --offload layers: conditioning_linears(), for the uploads
};

}  // namespace flux2
