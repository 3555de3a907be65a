// Flux2Transformer: a step's inputs on the device (the latents and context, the timestep conditioning or its
// projections, the RoPE tables) and the step itself, run op by op the first time for a shape and recorded, then
// replayed (Backend::begin_recording / replay) with only its inputs refilled.
#include <algorithm>

#include "core/log.h"
#include "models/flux2/flux2_embeddings.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

struct Flux2Transformer::HostStepInputs {
    const Tensor* hidden_states;          // host F32 or an F32 state on the backend
    const Tensor* encoder_hidden_states;  // host F32 or on the backend
    Tensor timestep_proj, guidance_proj;  // unless precomputed
    const Conditioning* conditioning;     // precomputed (precompute_conditioning), or null
    Tensor ids;                           // [Lt + Li, 4], text first (FLUX2_SPEC.md §1.3 step 6)
    Tensor cos, sin;                      // RoPE tables of ids, once compute_rope ran
};

Flux2Transformer::HostStepInputs Flux2Transformer::host_inputs(const Flux2Inputs& in) const {
    HostStepInputs h{&in.hidden_states, &in.encoder_hidden_states, {}, {}, precomputed_conditioning(in), {}, {}, {}};
    if (!h.conditioning) {
        h.timestep_proj = projection(in.timestep);
        if (config_.guidance_embeds) h.guidance_proj = projection(*in.guidance);
    }
    const int64_t Lt = in.txt_ids.dim(0), Li = in.img_ids.dim(0);
    h.ids = Tensor::zeros({Lt + Li, 4});
    std::copy_n(in.txt_ids.f32(), Lt * 4, h.ids.f32());
    std::copy_n(in.img_ids.f32(), Li * 4, h.ids.f32() + Lt * 4);
    return h;
}

void Flux2Transformer::compute_rope(HostStepInputs& in) const {
    RopeTables rope = rope_tables(in.ids, config_.axes_dims_rope, config_.rope_theta);
    in.cos = std::move(rope.cos);
    in.sin = std::move(rope.sin);
}

Flux2Transformer::StepInputs Flux2Transformer::allocate_inputs(const HostStepInputs& in) const {
    Backend& be = *backend_;
    StepInputs d;
    d.hidden_states = be.uninitialized(in.hidden_states->shape());
    d.encoder_hidden_states = be.uninitialized(in.encoder_hidden_states->shape());
    if (in.conditioning) {
        const Conditioning& c = *in.conditioning;
        d.conditioning = {be.uninitialized(c.mod_img.shape()), be.uninitialized(c.mod_txt.shape()),
                          be.uninitialized(c.mod_single.shape()), be.uninitialized(c.mod_out.shape())};
    } else {
        d.timestep_proj = be.uninitialized(in.timestep_proj.shape());
        if (in.guidance_proj.defined()) d.guidance_proj = be.uninitialized(in.guidance_proj.shape());
    }
    d.cos = be.uninitialized(in.cos.shape());
    d.sin = be.uninitialized(in.sin.shape());
    return d;
}

void Flux2Transformer::refill_inputs(const HostStepInputs& in, StepInputs& dst) const {
    Backend& be = *backend_;
    if (on_backend(*in.hidden_states)) {
        be.state_into(*in.hidden_states, dst.hidden_states);
    } else {
        be.upload_into(*in.hidden_states, dst.hidden_states);
    }
    const Tensor& context = *in.encoder_hidden_states;
    if (on_backend(context)) {
        be.copy_into(context, 0, context.dim(2), dst.encoder_hidden_states, 0, 0);
    } else {
        be.upload_into(context, dst.encoder_hidden_states);
    }
    if (in.conditioning) {
        copy_conditioning(*in.conditioning, dst.conditioning);
    } else {
        be.upload_into(in.timestep_proj, dst.timestep_proj);
        if (in.guidance_proj.defined()) be.upload_into(in.guidance_proj, dst.guidance_proj);
    }
    if (in.cos.defined()) {
        be.upload_into(in.cos, dst.cos);
        be.upload_into(in.sin, dst.sin);
    }
}

Tensor Flux2Transformer::step(const Flux2Inputs& in, const std::tuple<int64_t, int64_t, int64_t>& shape) const {
    Backend& be = *backend_;
    const int64_t B = in.hidden_states.dim(0), Li = in.hidden_states.dim(1), Lt = in.encoder_hidden_states.dim(1);
    HostStepInputs host = host_inputs(in);
    if (!replay_ || !be.can_record()) {
        compute_rope(host);
        StepInputs d = allocate_inputs(host);
        refill_inputs(host, d);
        Tensor out = be.uninitialized({B, Li, config_.out_channels});
        run_step(d, out);
        return out;
    }
    auto [it, first] = replays_.try_emplace(shape);
    if (!first && it->second.inputs.conditioning.defined() != (host.conditioning != nullptr)) {
        // Recorded with the conditioning computed in the step and now precomputed, or the other way round: the
        // recording's inputs differ, so it is made again.
        replays_.erase(it);
        return step(in, shape);
    }
    Replay& r = it->second;
    if (first) {
        // The first step of a shape runs op by op (weights are prepared, GEMM and attention plans chosen), then the
        // same step is recorded for the next calls. Recording executes nothing, so r.output keeps this step's values.
        compute_rope(host);
        r.inputs = allocate_inputs(host);
        refill_inputs(host, r.inputs);
        r.ids = host.ids;
        r.output = be.uninitialized({B, Li, config_.out_channels});
        run_step(r.inputs, r.output);
        be.begin_recording();
        try {
            run_step(r.inputs, r.output);
        } catch (...) {
            replays_.erase(it);
            try {
                be.end_recording();  // leave the backend usable; the step's own error is the one to report
            } catch (const std::exception&) {
            }
            throw;
        }
        r.ops = be.end_recording();
        log_info("transformer step recorded for replay (B ", B, ", ", Li, " image + ", Lt, " text tokens)");
        return r.output;
    }
    // The positions rarely change between steps (never within one generation): skip the RoPE tables then.
    if (!std::equal(host.ids.f32(), host.ids.f32() + host.ids.numel(), r.ids.f32())) {
        compute_rope(host);
        r.ids = host.ids;
    }
    refill_inputs(host, r.inputs);
    if (layer_stream_) layer_stream_->before_replay();
    be.replay(*r.ops);
    return r.output;
}

}  // namespace flux2
