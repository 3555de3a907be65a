// Flux2Transformer: a step's timestep conditioning (the timestep and guidance embeddings and the modulation they
// make), computed in the step or ahead for a whole generation (precompute_conditioning). It depends on the
// timestep and guidance only, so a generation's steps need a few kilobytes of it each, where the linears that make
// it hold ~1.4 GB (dev, BF16); computed ahead, the steps do not need those linears on the device.
#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_embeddings.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

namespace {
// The conditioning cache's key: the timestep values, then the guidance values.
std::vector<float> conditioning_key(const std::vector<float>& timestep, const std::optional<std::vector<float>>& g) {
    std::vector<float> key = timestep;
    if (g) key.insert(key.end(), g->begin(), g->end());
    return key;
}
}  // namespace

Tensor Flux2Transformer::projection(const std::vector<float>& values) const {
    std::vector<float> scaled(values.size());
    for (size_t i = 0; i < values.size(); ++i) scaled[i] = values[i] * 1000.0f;
    return timestep_projection(scaled, config_.timestep_guidance_channels);
}

Flux2Transformer::Conditioning Flux2Transformer::conditioning(const StepInputs& in) const {
    Backend& be = *backend_;
    auto embed = [&](const Tensor& proj, const LinearWeight& l1, const LinearWeight& l2) {
        return be.linear(be.silu(be.linear(proj, l1)), l2);
    };
    Tensor temb = embed(in.timestep_proj, time_linear_1_, time_linear_2_);  // [B, D]
    if (config_.guidance_embeds) temb = be.add(temb, embed(in.guidance_proj, guidance_linear_1_, guidance_linear_2_));
    const Tensor act = be.silu(temb);
    return {be.linear(act, mod_img_), be.linear(act, mod_txt_), be.linear(act, mod_single_), be.linear(act, norm_out_)};
}

const Flux2Transformer::Conditioning* Flux2Transformer::precomputed_conditioning(const Flux2Inputs& in) const {
    if (conditioning_cache_.empty()) return nullptr;
    const auto it = conditioning_cache_.find(conditioning_key(in.timestep, in.guidance));
    return it == conditioning_cache_.end() ? nullptr : &it->second;
}

void Flux2Transformer::copy_conditioning(const Conditioning& src, Conditioning& dst) const {
    // [B, C] as [B, 1, C] for copy_into; reshapes share the storage.
    auto copy = [&](const Tensor& s, Tensor& d) {
        const int64_t B = s.dim(0), C = s.dim(1);
        Tensor d3 = d.reshape({B, 1, C});
        backend_->copy_into(s.reshape({B, 1, C}), 0, C, d3, 0, 0);
    };
    copy(src.mod_img, dst.mod_img);
    copy(src.mod_txt, dst.mod_txt);
    copy(src.mod_single, dst.mod_single);
    copy(src.mod_out, dst.mod_out);
}

std::vector<const LinearWeight*> Flux2Transformer::conditioning_linears() const {
    std::vector<const LinearWeight*> all{&time_linear_1_, &time_linear_2_};
    if (config_.guidance_embeds) all.insert(all.end(), {&guidance_linear_1_, &guidance_linear_2_});
    all.insert(all.end(), {&mod_img_, &mod_txt_, &mod_single_, &norm_out_});
    return all;
}

void Flux2Transformer::precompute_conditioning(const std::vector<float>& timesteps,
                                               const std::optional<float>& guidance, int64_t batch) const {
    conditioning_cache_.clear();
    if (in_rank_group()) return;
    check(batch >= 1, "precompute_conditioning: batch must be at least 1, got ", batch);
    check(guidance.has_value() == config_.guidance_embeds, "precompute_conditioning: this model ",
          config_.guidance_embeds ? "has a guidance embedding: guidance is required"
                                  : "has no guidance embedding (klein): guidance must be absent");
    Backend& be = *backend_;
    std::optional<std::vector<float>> g;
    if (guidance) g = std::vector<float>(static_cast<size_t>(batch), *guidance);
    for (const float t : timesteps) {
        const std::vector<float> sigmas(static_cast<size_t>(batch), t);
        std::vector<float> key = conditioning_key(sigmas, g);
        if (conditioning_cache_.count(key)) continue;
        // Uploaded as a step's refill_inputs uploads them, so the same values go into the same ops.
        StepInputs in;
        in.timestep_proj = be.upload(projection(sigmas));
        if (g) in.guidance_proj = be.upload(projection(*g));
        conditioning_cache_.emplace(std::move(key), conditioning(in));
    }
    if (!layer_stream_) return;
    // --offload layers: the steps read the cache, so the linears' device copies go until the next generation. A
    // recorded step that computes its conditioning reads them: it goes too (the next such step records anew).
    std::erase_if(replays_, [](const auto& entry) { return !entry.second.inputs.conditioning.defined(); });
    int released = 0;
    for (const LinearWeight* w : conditioning_linears()) released += release_prepared(*w) > 0;
    be.release_cached_memory();
    log_debug("offload layers: conditioning of ", conditioning_cache_.size(), " steps computed ahead; ", released,
              " conditioning linears released");
}

}  // namespace flux2
