#include "pipeline/offload.h"

#include "core/error.h"
#include "core/log.h"

namespace flux2 {

namespace {
// The block linears (FLUX2_SPEC.md §1.3); embedders and modulation are a few percent and left out.
double transformer_linear_params(const Flux2Config& c) {
    const double D = static_cast<double>(c.inner_dim()), M = static_cast<double>(c.mlp_hidden());
    const double per_double = 2.0 * (4.0 * D * D + 3.0 * D * M);  // both streams: q, k, v, out, MLP in (2M), out
    const double per_single = D * (3.0 * D + 2.0 * M) + (D + M) * D;
    return per_double * static_cast<double>(c.num_layers) + per_single * static_cast<double>(c.num_single_layers);
}

double decoder_linear_params(const DecoderConfig& c) {
    const double h = static_cast<double>(c.hidden_size);
    const double attention = h * static_cast<double>(c.q_dim() * 2 + c.kv_dim() * 2);
    const double mlp = 3.0 * h * static_cast<double>(c.intermediate_size);
    return (attention + mlp) * static_cast<double>(c.num_hidden_layers);
}
}  // namespace

int64_t resident_weight_bytes(const Flux2Config& transformer, const DecoderConfig* text_encoder,
                              const BackendOptions& backend, WeightPrecision text_encoder_weights, bool on_gpu) {
    double dit = 4.0, te = 4.0;
    if (on_gpu) {
        // NVFP4 weights of either model run through the fp8 path (converted at preparation) unless 4-bit resident.
        const double fp4 = backend.residency == "fp4" ? 0.5625 : 1.0;
        dit = backend.precision == "bf16" ? 2.0 : fp4;
        te = text_encoder_weights == WeightPrecision::fp8   ? 1.0
             : text_encoder_weights == WeightPrecision::fp4 ? fp4
                                                            : 2.0;
    }
    return static_cast<int64_t>(transformer_linear_params(transformer) * dit +
                                (text_encoder ? decoder_linear_params(*text_encoder) * te : 0.0));
}

OffloadChoice choose_offload(const std::string& flag, int64_t resident_bytes, int64_t device_bytes) {
    if (flag == "none") return {Offload::none, "--offload none"};
    if (flag == "model") return {Offload::model, "--offload model"};
    check(flag == "auto", "--offload must be none, model or auto, got '", flag, "'");
    const double need = static_cast<double>(resident_bytes) / 1e9, have = static_cast<double>(device_bytes) / 1e9;
    if (resident_bytes > kAutoOffloadShare * static_cast<double>(device_bytes))
        return {Offload::model, str("auto: the resident weights (~", need, " GB) would take more than ",
                                    static_cast<int>(kAutoOffloadShare * 100), "% of the device's ", have,
                                    " GB; --offload none keeps them")};
    return {Offload::none, str("auto: the resident weights (~", need, " GB) fit the device's ", have, " GB")};
}

OffloadChoice choose_offload(const std::string& flag, const Flux2Config& transformer, const DecoderConfig* text_encoder,
                             const BackendOptions& options, WeightPrecision text_encoder_weights,
                             const Backend& backend) {
    const bool on_gpu = backend.name() != "cpu";
    return choose_offload(flag, resident_weight_bytes(transformer, text_encoder, options, text_encoder_weights, on_gpu),
                          backend.memory_capacity_bytes());
}

std::function<void()> release_before_decode(Flux2Transformer& transformer) {
    return [&transformer] {
        log_debug("offload: transformer weights released (", transformer.release_device_weights(), " linears)");
    };
}

const char* offload_name(Offload mode) { return mode == Offload::model ? "model" : "none"; }

}  // namespace flux2
