#include "models/flux2/flux2_transformer.h"

#include <algorithm>
#include <array>
#include <utility>

#include "core/error.h"
#include "core/log.h"
#include "models/transformer_checkpoint.h"
#include "models/weight_source.h"

namespace flux2 {

namespace {
constexpr int kSeq = 1;  // token axis of [B, L, D]

// One GEMM instead of three where the weights join exactly (same format and per-tensor scales).
std::vector<LinearWeight> fused_qkv(LinearWeight q, LinearWeight k, LinearWeight v, const std::string& name) {
    std::vector<LinearWeight> out;
    if (can_concat_rows({&q, &k, &v})) {
        out.push_back(concat_rows({&q, &k, &v}, name));
    } else {
        out.push_back(std::move(q));
        out.push_back(std::move(k));
        out.push_back(std::move(v));
    }
    return out;
}
}  // namespace

Flux2Transformer Flux2Transformer::load(const std::string& path, Backend& backend) {
    TransformerCheckpoint ckpt = TransformerCheckpoint::open(path);
    Flux2Config config = Flux2Config::for_checkpoint(ckpt);
    return load(ckpt, config, backend);
}

Flux2Transformer Flux2Transformer::load(WeightSource& ckpt, const Flux2Config& c, Backend& backend) {
    log_info(c.summary());
    Flux2Transformer m;
    m.config_ = c;
    m.backend_ = &backend;
    const int64_t D = c.inner_dim(), M = c.mlp_hidden(), Dh = c.attention_head_dim;
    auto lin = [&](const std::string& name, int64_t out, int64_t in) { return ckpt.take_linear(name, out, in); };
    auto gain = [&](const std::string& name) { return backend.upload(ckpt.take_f32(name, {Dh})); };

    m.x_embedder_ = lin("x_embedder", D, c.in_channels);
    m.context_embedder_ = lin("context_embedder", D, c.joint_attention_dim);
    const std::string te = "time_guidance_embed.";
    m.time_linear_1_ = lin(te + "timestep_embedder.linear_1", D, c.timestep_guidance_channels);
    m.time_linear_2_ = lin(te + "timestep_embedder.linear_2", D, D);
    if (c.guidance_embeds) {
        m.guidance_linear_1_ = lin(te + "guidance_embedder.linear_1", D, c.timestep_guidance_channels);
        m.guidance_linear_2_ = lin(te + "guidance_embedder.linear_2", D, D);
    }
    m.mod_img_ = lin("double_stream_modulation_img.linear", 6 * D, D);
    m.mod_txt_ = lin("double_stream_modulation_txt.linear", 6 * D, D);
    m.mod_single_ = lin("single_stream_modulation.linear", 3 * D, D);

    for (int64_t i = 0; i < c.num_layers; ++i) {
        const std::string p = str("transformer_blocks.", i, ".");
        DoubleBlock b;
        b.qkv = fused_qkv(lin(p + "attn.to_q", D, D), lin(p + "attn.to_k", D, D), lin(p + "attn.to_v", D, D),
                          p + "attn.to_qkv");
        b.to_out = lin(p + "attn.to_out.0", D, D);
        b.add_qkv = fused_qkv(lin(p + "attn.add_q_proj", D, D), lin(p + "attn.add_k_proj", D, D),
                              lin(p + "attn.add_v_proj", D, D), p + "attn.add_qkv_proj");
        b.to_add_out = lin(p + "attn.to_add_out", D, D);
        b.ff_in = lin(p + "ff.linear_in", 2 * M, D);
        b.ff_out = lin(p + "ff.linear_out", D, M);
        b.ff_context_in = lin(p + "ff_context.linear_in", 2 * M, D);
        b.ff_context_out = lin(p + "ff_context.linear_out", D, M);
        b.norm_q = gain(p + "attn.norm_q.weight");
        b.norm_k = gain(p + "attn.norm_k.weight");
        b.norm_added_q = gain(p + "attn.norm_added_q.weight");
        b.norm_added_k = gain(p + "attn.norm_added_k.weight");
        m.double_blocks_.push_back(std::move(b));
    }
    for (int64_t i = 0; i < c.num_single_layers; ++i) {
        const std::string p = str("single_transformer_blocks.", i, ".attn.");
        SingleBlock b;
        b.to_qkv_mlp = lin(p + "to_qkv_mlp_proj", 3 * D + 2 * M, D);
        b.to_out = lin(p + "to_out", D, D + M);
        b.norm_q = gain(p + "norm_q.weight");
        b.norm_k = gain(p + "norm_k.weight");
        m.single_blocks_.push_back(std::move(b));
    }
    m.norm_out_ = lin("norm_out.linear", 2 * D, D);
    m.proj_out_ = lin("proj_out", c.out_channels, D);
    ckpt.finish();
    log_info("loaded ", ckpt.describe());
    return m;
}

std::vector<LinearWeight*> Flux2Transformer::all_linears() {
    std::vector<LinearWeight*> all{&x_embedder_, &context_embedder_, &time_linear_1_, &time_linear_2_};
    if (config_.guidance_embeds) all.insert(all.end(), {&guidance_linear_1_, &guidance_linear_2_});
    all.insert(all.end(), {&mod_img_, &mod_txt_, &mod_single_});
    for (const std::vector<LinearWeight*>& block : block_linears()) all.insert(all.end(), block.begin(), block.end());
    all.insert(all.end(), {&norm_out_, &proj_out_});
    return all;
}

std::vector<std::vector<LinearWeight*>> Flux2Transformer::block_linears() {
    std::vector<std::vector<LinearWeight*>> blocks;
    for (DoubleBlock& b : double_blocks_) {
        std::vector<LinearWeight*> block;
        for (LinearWeight& w : b.qkv) block.push_back(&w);
        for (LinearWeight& w : b.add_qkv) block.push_back(&w);
        block.insert(block.end(), {&b.to_out, &b.to_add_out, &b.ff_in, &b.ff_out, &b.ff_context_in, &b.ff_context_out});
        blocks.push_back(std::move(block));
    }
    for (SingleBlock& b : single_blocks_) blocks.push_back({&b.to_qkv_mlp, &b.to_out});
    return blocks;
}

void Flux2Transformer::set_loras(const std::vector<ActiveLora>& loras) {
    attach_loras(loras);
    conditioning_cache_.clear();  // made with the previous adapters
    if (peers_) peers_->set_loras(loras);
    if (guidance_peer_) guidance_peer_->set_loras(loras);
}

void Flux2Transformer::attach_loras(const std::vector<ActiveLora>& loras) {
    std::vector<LinearWeight*> linears = all_linears();
    std::vector<const LinearWeight*> view(linears.begin(), linears.end());
    if (tp_)
        for (size_t i = 0; i < view.size(); ++i) view[i] = &tp_whole_layers_[i];  // adapters address whole layers
    std::vector<std::shared_ptr<const LoraBranch>> branches = build_lora_branches(view, loras);
    int64_t layers = 0, max_rank = 0;
    for (size_t i = 0; i < linears.size(); ++i) {
        if (branches[i] && tp_)
            branches[i] = shard_lora_branch(*branches[i], tp_shards_[i].rows, tp_shards_[i].columns);
        linears[i]->lora = branches[i];
        if (branches[i]) {
            ++layers;
            max_rank = std::max(max_rank, branches[i]->rank);
        }
    }
    loras_ = loras;
    // A recorded step holds the previous branches' device buffers: record anew with the new ones.
    replays_.clear();
    if (loras.empty()) {
        log_info("LoRA: none");
    } else {
        std::string names;
        for (const ActiveLora& l : loras) names += str(names.empty() ? "" : ", ", l.name, " x", l.strength);
        log_info("LoRA: ", names, " on ", layers, " of ", linears.size(), " linears (rank up to ", max_rank, ")");
    }
}

void Flux2Transformer::validate(const Flux2Inputs& in) const {
    const Tensor& x = in.hidden_states;
    check(x.ndim() == 3 && x.dim(2) == config_.in_channels, "hidden_states must be [B, Li, ", config_.in_channels,
          "], got ", shape_str(x.shape()));
    const int64_t B = x.dim(0), Li = x.dim(1);
    const Tensor& c = in.encoder_hidden_states;
    check(c.ndim() == 3 && c.dim(0) == B && c.dim(2) == config_.joint_attention_dim, "encoder_hidden_states must be [",
          B, ", Lt, ", config_.joint_attention_dim, "], got ", shape_str(c.shape()));
    const int64_t Lt = c.dim(1);
    check(static_cast<int64_t>(in.timestep.size()) == B, "timestep must have ", B, " values (one per sample), got ",
          in.timestep.size());
    if (config_.guidance_embeds) {
        check(in.guidance.has_value(), "this model has a guidance embedding: guidance [", B, "] is required");
        check(static_cast<int64_t>(in.guidance->size()) == B, "guidance must have ", B, " values, got ",
              in.guidance->size());
    } else {
        check(!in.guidance.has_value(), "this model has no guidance embedding (klein): guidance must be absent");
    }
    check(in.img_ids.shape() == Shape{Li, 4}, "img_ids must be [", Li, ", 4], got ", shape_str(in.img_ids.shape()));
    check(in.txt_ids.shape() == Shape{Lt, 4}, "txt_ids must be [", Lt, ", 4], got ", shape_str(in.txt_ids.shape()));
}

void Flux2Transformer::project_qkv(const std::vector<LinearWeight>& qkv, const Tensor& x, const Tensor& norm_q,
                                   const Tensor& norm_k, const Tensor& cos, const Tensor& sin, Tensor& q, Tensor& k,
                                   Tensor& joint, int64_t tok) const {
    Backend& be = *backend_;
    const int64_t D = config_.inner_dim() / tp_size();  // this rank's attention columns
    const float eps = config_.eps;
    // A fused projection into joint [q | k | v] rows writes there (in place on the GPU); v alone is copied.
    const bool whole = qkv.size() == 1 && joint.dim(2) == 3 * D;
    std::vector<Tensor> p;
    if (whole) {
        p.push_back(be.linear_into(x, qkv[0], joint, tok, 2 * D));
    } else {
        for (const LinearWeight& w : qkv) p.push_back(be.linear(x, w));
    }
    // Output i (q, k, v) is columns [i D, (i + 1) D) of the fused projection, or all of projection i.
    auto src = [&](int i) -> const Tensor& { return p.size() == 1 ? p[0] : p[i]; };
    auto col = [&](int i) { return p.size() == 1 ? i * D : 0; };
    be.rms_norm_rope_into(src(0), col(0), norm_q, cos, sin, eps, q, tok);
    be.rms_norm_rope_into(src(1), col(1), norm_k, cos, sin, eps, k, tok);
    if (!whole) be.copy_into(src(2), col(2), D, joint, tok, 0);
}

void Flux2Transformer::double_block(const DoubleBlock& b, Tensor& img, Tensor& txt, const Tensor& mod_img,
                                    const Tensor& mod_txt, const Tensor& cos, const Tensor& sin) const {
    // img [B, Li, D], txt [B, Lt, D]; mod_* [B, 6D] = (shift, scale, gate) for attention, then for the MLP.
    Backend& be = *backend_;
    const int64_t D = config_.inner_dim(), B = img.dim(0), Li = img.dim(1), Lt = txt.dim(1), L = Lt + Li;
    // This rank's heads and attention columns (all of them without tensor parallelism).
    const int64_t H = config_.num_attention_heads / tp_size(), Dh = config_.attention_head_dim, Da = H * Dh;
    const float eps = config_.eps;
    auto chunk = [&](const Tensor& mod, int i) { return be.slice(mod, 1, i * D, D); };
    // The normalized input of a stream's Q/K/V projection(s); quantized by the norm kernel when they are one GEMM.
    auto qkv_input = [&](const std::vector<LinearWeight>& qkv, const Tensor& x, const Tensor& shift,
                         const Tensor& scale) {
        return qkv.size() == 1 ? be.layer_norm_modulate_for(qkv[0], x, shift, scale, eps)
                               : be.layer_norm_modulate(x, shift, scale, eps);
    };
    Tensor cos_txt = be.slice(cos, 0, 0, Lt), sin_txt = be.slice(sin, 0, 0, Lt);
    Tensor cos_img = be.slice(cos, 0, Lt, Li), sin_img = be.slice(sin, 0, Lt, Li);

    // Joint attention over [text, image] tokens, text first: each stream writes its token range directly. Where
    // both streams' projections are fused, their [q | k | v] rows go into one joint tensor and the attention reads V
    // there (dev 1024²: no 63 MB copy of V a block); otherwise each stream's V is copied into a joint V.
    const bool fused = b.add_qkv.size() == 1 && b.qkv.size() == 1;
    Tensor q = qk_buffer({B, L, H, Dh}, {&b.norm_added_q, &b.norm_q});
    Tensor k = qk_buffer({B, L, H, Dh}, {&b.norm_added_k, &b.norm_k});
    Tensor joint = be.uninitialized({B, L, fused ? 3 * Da : Da});
    project_qkv(b.add_qkv, qkv_input(b.add_qkv, txt, chunk(mod_txt, 0), chunk(mod_txt, 1)), b.norm_added_q,
                b.norm_added_k, cos_txt, sin_txt, q, k, joint, 0);
    project_qkv(b.qkv, qkv_input(b.qkv, img, chunk(mod_img, 0), chunk(mod_img, 1)), b.norm_q, b.norm_k, cos_img,
                sin_img, q, k, joint, Lt);
    // The attention's text and image rows, each as its output projection takes it.
    std::array<Tensor, 2> o;
    const int64_t v_col = fused ? 2 * Da : 0;
    if (ulysses_) {
        Tensor all = be.uninitialized({B, L, Da});
        attend(q, k, joint, v_col, all, 0);
        o = {be.slice(all, kSeq, 0, Lt), be.slice(all, kSeq, Lt, Li)};
    } else {
        o = be.attention_split_for(b.to_add_out, b.to_out, std::move(q), std::move(k), joint, v_col, Lt);
    }
    q = k = joint = Tensor();
    // Both streams' attention residuals before either MLP (the streams are independent from here on), so that the
    // attention's buffers are gone before the MLPs' wide activations come; each MLP's hidden activation goes before
    // its output projection's GEMM.
    residual(img, chunk(mod_img, 2), o[1], b.to_out);
    residual(txt, chunk(mod_txt, 2), o[0], b.to_add_out);
    o = {};

    Tensor hx = be.swiglu_for(
        b.ff_out,
        be.linear(be.layer_norm_modulate_for(b.ff_in, img, chunk(mod_img, 3), chunk(mod_img, 4), eps), b.ff_in));
    residual(img, chunk(mod_img, 5), hx, b.ff_out);
    hx = Tensor();
    Tensor hc = be.swiglu_for(
        b.ff_context_out,
        be.linear(be.layer_norm_modulate_for(b.ff_context_in, txt, chunk(mod_txt, 3), chunk(mod_txt, 4), eps),
                  b.ff_context_in));
    residual(txt, chunk(mod_txt, 5), hc, b.ff_context_out);
}

void Flux2Transformer::single_block(const SingleBlock& b, Tensor& h, const Tensor& mod, const Tensor& cos,
                                    const Tensor& sin) const {
    // h [B, L, D]; mod [B, 3D] = (shift, scale, gate).
    Backend& be = *backend_;
    const int64_t D = config_.inner_dim(), B = h.dim(0), L = h.dim(1);
    // This rank's heads, attention columns and MLP columns (all of them without tensor parallelism).
    const int64_t H = config_.num_attention_heads / tp_size(), Dh = config_.attention_head_dim, Da = H * Dh;
    const int64_t M = config_.mlp_hidden() / tp_size();
    const float eps = config_.eps;
    // The packed projection [q | k | v | gate | up] runs in two parts from one normalized input: [q | k | v], gone
    // once the attention has read it, then the MLP half, so the step's memory peak (here) holds one part at a time.
    Tensor nx = be.layer_norm_modulate_for(b.to_qkv_mlp, h, be.slice(mod, 1, 0, D), be.slice(mod, 1, D, D), eps);
    Tensor qkv = be.linear_rows(nx, b.to_qkv_mlp, 0, 3 * Da);
    Tensor q = qk_buffer({B, L, H, Dh}, {&b.norm_q}), k = qk_buffer({B, L, H, Dh}, {&b.norm_k});
    be.rms_norm_rope_into(qkv, 0, b.norm_q, cos, sin, eps, q, 0);
    be.rms_norm_rope_into(qkv, Da, b.norm_k, cos, sin, eps, k, 0);
    // to_out's input [attn | swiglu(mlp)]: the attention lands in the first Da columns (or stays in the FP8 form
    // the backend's row quantizer reads, where Ulysses does not exchange it between ranks first), and the MLP half
    // is produced beside it in to_out's input form.
    Tensor attn;
    if (ulysses_) {
        attn = be.uninitialized({B, L, Da + M});
        attend(q, k, qkv, 2 * Da, attn, 0);
    } else {
        attn = be.attention_beside_for(b.to_out, std::move(q), std::move(k), qkv, 2 * Da, M);
    }
    q = k = qkv = Tensor();
    Tensor mlp = be.linear_rows(nx, b.to_qkv_mlp, 3 * Da, 2 * M);  // [gate | up]
    nx = Tensor();
    Tensor in = be.swiglu_beside_for(b.to_out, attn, mlp, 0, M);
    attn = mlp = Tensor();
    residual(h, be.slice(mod, 1, 2 * D, D), in, b.to_out);
}

void Flux2Transformer::run_step(const StepInputs& in, Tensor& out) const {
    Backend& be = *backend_;
    const int64_t D = config_.inner_dim();
    const int64_t Li = in.hidden_states.dim(1), Lt = in.encoder_hidden_states.dim(1);

    const Conditioning c = in.conditioning.defined() ? in.conditioning : conditioning(in);
    const Tensor &mod_img = c.mod_img, &mod_txt = c.mod_txt, &mod_single = c.mod_single;

    Tensor img = be.linear(in.hidden_states, x_embedder_);
    Tensor txt = be.linear(in.encoder_hidden_states, context_embedder_);

    // Under --offload layers each block's weights arrive around it (LayerStream); the groups are the blocks in order.
    LayerStream* ls = layer_stream_.get();
    size_t group = 0;
    for (const DoubleBlock& b : double_blocks_) {
        if (ls) ls->enter(group);
        double_block(b, img, txt, mod_img, mod_txt, in.cos, in.sin);
        if (ls) ls->leave(group++);
    }
    Tensor h = be.concat(txt, img, kSeq);
    img = Tensor();  // the single blocks hold the step's memory peak: only h carries the streams on
    txt = Tensor();
    for (const SingleBlock& b : single_blocks_) {
        if (ls) ls->enter(group);
        single_block(b, h, mod_single, in.cos, in.sin);
        if (ls) ls->leave(group++);
    }
    h = be.slice(h, kSeq, Lt, Li);

    // Final AdaLN: diffusers order (scale, shift) — BFL checkpoints were swapped when bound.
    const Tensor& e = c.mod_out;
    h = be.layer_norm_modulate_for(proj_out_, h, be.slice(e, 1, D, D), be.slice(e, 1, 0, D), config_.eps);
    Tensor v = be.linear(h, proj_out_);
    be.copy_into(v, 0, config_.out_channels, out, 0, 0);
}

void Flux2Transformer::set_sequence_parallel(std::shared_ptr<Communicator> comm, std::shared_ptr<ForwardPeers> peers) {
    // Under tensor parallelism (set first) this rank keeps H / tp heads, and the Ulysses exchange moves those.
    ulysses_ = comm ? std::make_shared<UlyssesAttention>(std::move(comm), config_.num_attention_heads / tp_size(),
                                                         config_.attention_head_dim)
                    : nullptr;
    peers_ = ulysses_ ? std::move(peers) : nullptr;
    replays_.clear();  // recorded steps hold the previous layout's exchanges
}

Flux2Transformer::~Flux2Transformer() {
    if (!peers_) return;
    try {
        leave_rank_group();
    } catch (const std::exception& e) {
        log_warn("leaving the rank group: ", e.what());
    }
}

void Flux2Transformer::leave_rank_group() {
    if (!ulysses_ && !tp_) return;
    replays_.clear();
    if (peers_) peers_->leave();
    // Every rank closes its groups in the same order (Ulysses x TP ranks belong to one of each).
    if (tp_) tp_->close();
    if (ulysses_) ulysses_->comm().close();
}

void Flux2Transformer::abort_rank_group(const std::string& why) const {
    if (tp_) tp_->abort(why);
    if (ulysses_) ulysses_->comm().abort(why);
}

void Flux2Transformer::residual(Tensor& x, const Tensor& gate, const Tensor& in, const LinearWeight& w) const {
    if (!tp_) {
        backend_->linear_gated_residual(x, gate, in, w);
        return;
    }
    Tensor y = backend_->linear(in, w);  // this rank's share of the sum over w's inputs
    tp_->all_reduce_sum(y);
    backend_->gated_residual(x, gate, y);
}

Tensor Flux2Transformer::qk_buffer(const Shape& shape, const std::vector<const Tensor*>& norm_weights) const {
    // Ulysses exchanges q and k between ranks as BF16 heads before attention.
    return ulysses_ ? backend_->uninitialized(shape) : backend_->attention_qk_buffer(shape, norm_weights);
}

void Flux2Transformer::attend(const Tensor& q, const Tensor& k, const Tensor& v, int64_t v_col, Tensor& out,
                              int64_t out_col) const {
    if (ulysses_) {
        ulysses_->attention_into(*backend_, q, k, v, v_col, out, out_col);
    } else {
        backend_->attention_into(q, k, v, v_col, out, out_col);
    }
}

// Several devices exchange inputs and outputs through the host: a state kept on this backend goes there and back.
Flux2Inputs Flux2Transformer::with_host_state(const Flux2Inputs& in) const {
    Flux2Inputs host = in;
    host.hidden_states = backend_->download(in.hidden_states);
    return host;
}

Tensor Flux2Transformer::forward(const Flux2Inputs& in) const {
    validate(in);
    if (on_backend(in.hidden_states) && (peers_ || ulysses_)) return backend_->upload(forward(with_host_state(in)));
    if (!peers_) return this_rank_forward(in);
    peers_->begin_forward(in);
    Tensor out;
    try {
        out = this_rank_forward(in);
    } catch (...) {
        // The peers may be waiting in an exchange this rank will not join: make it fail for them, then wait for
        // them to come out; this rank's error is reported (it names a failed peer when that was the cause).
        abort_rank_group(str("rank 0 failed: ", current_exception_message()));
        try {
            peers_->end_forward();
        } catch (const std::exception&) {
        }
        throw;
    }
    peers_->end_forward();
    return out;
}

std::pair<Tensor, Tensor> Flux2Transformer::forward_guided(const Flux2Inputs& cond, const Flux2Inputs& uncond) const {
    if (!guidance_peer_) return {forward(cond), forward(uncond)};
    validate(uncond);
    const bool state_here = on_backend(uncond.hidden_states);
    guidance_peer_->begin_uncond(state_here ? with_host_state(uncond) : uncond);
    Tensor v;
    try {
        v = forward(cond);
    } catch (...) {
        try {
            guidance_peer_->end_uncond();  // wait for it before reporting this device's error
        } catch (const std::exception&) {
        }
        throw;
    }
    Tensor v_uncond = guidance_peer_->end_uncond();
    return {v, state_here ? backend_->upload(v_uncond) : v_uncond};
}

Tensor Flux2Transformer::this_rank_forward(const Flux2Inputs& in) const {
    const auto shape =
        std::make_tuple(in.hidden_states.dim(0), in.hidden_states.dim(1), in.encoder_hidden_states.dim(1));
    if (!ulysses_) {
        const Tensor out = step(in, shape);  // the replay's own buffer: the next step overwrites it
        if (!on_backend(in.hidden_states)) return backend_->download(out);
        Tensor own = backend_->uninitialized(out.shape());
        backend_->copy_into(out, 0, out.dim(2), own, 0, 0);
        return own;
    }
    return ulysses_->gather_image(*backend_, step(ulysses_->shard_inputs(in, *backend_), shape));
}

}  // namespace flux2
