#include "pipeline/offload.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "models/text_encoder/decoder_checkpoint.h"
#include "models/text_encoder/text_encoder.h"

namespace flux2 {

namespace {
// The block linears (FLUX2_SPEC.md §1.3); embedders and modulation are a few percent and left out.
double transformer_linear_params(const Flux2Config& c) {
    const double D = static_cast<double>(c.inner_dim()), M = static_cast<double>(c.mlp_hidden());
    const double per_double = 2.0 * (4.0 * D * D + 3.0 * D * M);  // both streams: q, k, v, out, MLP in (2M), out
    const double per_single = D * (3.0 * D + 2.0 * M) + (D + M) * D;
    return per_double * static_cast<double>(c.num_layers) + per_single * static_cast<double>(c.num_single_layers);
}

double decoder_linear_params(const DecoderConfig& c, int64_t layers) {
    const double h = static_cast<double>(c.hidden_size);
    const double attention = h * static_cast<double>(c.q_dim() * 2 + c.kv_dim() * 2);
    const double mlp = 3.0 * h * static_cast<double>(c.intermediate_size);
    return (attention + mlp) * static_cast<double>(layers);
}

// Bytes a text-encoder weight takes on the GPU: the format it reaches the device in, on the chosen linear path.
double text_encoder_weight_bytes(const TextEncoderFootprint& te, const BackendOptions& b) {
    WeightFormat f = te.stored;  // --text-encoder-precision converts 16-bit layers; quantized files stay as they are
    if (f == WeightFormat::dense && te.precision == WeightPrecision::fp8) f = WeightFormat::fp8;
    if (f == WeightFormat::dense && te.precision == WeightPrecision::fp4) f = WeightFormat::nvfp4;
    if (b.precision == "fp4") return f == WeightFormat::nvfp4 ? 0.5625 : 2.0;  // the native FP4 GEMM, else BF16
    if (f == WeightFormat::dense || b.precision == "bf16") return 2.0;
    return f == WeightFormat::nvfp4 && b.residency == "fp4" ? 0.5625 : 1.0;  // E4M3 on the fp8 path
}

OffloadChoice pick_offload(const std::string& flag, int64_t together_bytes, int64_t largest_component_bytes,
                           int64_t device_bytes) {
    if (flag == "none") return {Offload::none, "--offload none"};
    if (flag == "model") return {Offload::model, "--offload model"};
    if (flag == "layers") return {Offload::layers, "--offload layers"};
    check(flag == "auto", "--offload must be none, model, layers or auto, got '", flag, "'");
    const double budget = kAutoOffloadShare * static_cast<double>(device_bytes);
    const double have = static_cast<double>(device_bytes) / 1e9;
    const int share = static_cast<int>(kAutoOffloadShare * 100);
    if (static_cast<double>(together_bytes) <= budget)
        return {Offload::none, str("auto: the resident weights (~", together_bytes / 1e9, " GB) fit the ", have,
                                   " GB available on the device")};
    if (static_cast<double>(largest_component_bytes) <= budget)
        return {Offload::model,
                str("auto: the resident weights (~", together_bytes / 1e9, " GB) would take more than ", share,
                    "% of the ", have, " GB available on the device; --offload none keeps them")};
    return {Offload::layers,
            str("auto: even the largest component's weights (~", largest_component_bytes / 1e9,
                " GB) would take more than ", share, "% of the ", have,
                " GB available on the device, so layers stream from host memory; --offload model keeps each whole")};
}
}  // namespace

TextEncoderFootprint text_encoder_footprint(const std::string& path, const std::vector<int>& out_layers,
                                            WeightPrecision precision) {
    const DecoderCheckpoint ckpt = DecoderCheckpoint::open(path);
    TextEncoderFootprint te;
    te.config = ckpt.config();
    te.layers_run = out_layers.empty() ? flux2_hidden_layers(te.config.family).back()
                                       : *std::max_element(out_layers.begin(), out_layers.end());
    te.layers_run = std::min(te.layers_run, te.config.num_hidden_layers);
    // A middle layer's MLP: the format most weights are in, even where a mixed file keeps some layers wider.
    te.stored = ckpt.stored_format(str("model.layers.", te.layers_run / 2, ".mlp.up_proj"));
    te.precision = precision;
    return te;
}

int64_t resident_weight_bytes(const Flux2Config& transformer, const TextEncoderFootprint* text_encoder,
                              const BackendOptions& backend, bool on_gpu) {
    double dit = 4.0, te = 4.0;
    if (on_gpu) {
        // NVFP4 weights run through the fp8 path (converted at preparation) unless 4-bit resident.
        dit = backend.precision == "bf16" ? 2.0 : backend.residency == "fp4" ? 0.5625 : 1.0;
        if (text_encoder) te = text_encoder_weight_bytes(*text_encoder, backend);
    }
    return static_cast<int64_t>(
        transformer_linear_params(transformer) * dit +
        (text_encoder ? decoder_linear_params(text_encoder->config, text_encoder->layers_run) * te : 0.0));
}

OffloadChoice choose_offload(const std::string& flag, int64_t together_bytes, int64_t largest_component_bytes,
                             int64_t device_bytes, int64_t requested_budget, int stream_e4m3) {
    OffloadChoice c = pick_offload(flag, together_bytes, largest_component_bytes, device_bytes);
    check(requested_budget < 0 || c.mode == Offload::layers || flag == "auto",
          "--resident-budget is for --offload layers (or auto), not --offload ", flag);
    check(stream_e4m3 >= 0, "--stream-e4m3 must be >= 0, got ", stream_e4m3);
    check(stream_e4m3 == 0 || c.mode == Offload::layers || flag == "auto",
          "--stream-e4m3 is for --offload layers (or auto), not --offload ", flag);
    if (c.mode != Offload::layers) return c;
    const double auto_budget = kAutoOffloadShare * static_cast<double>(device_bytes) - kActivationReserve;
    c.transformer_stream.resident_budget_bytes = requested_budget >= 0 ? requested_budget
                                                 : flag == "auto"
                                                     ? std::max<int64_t>(0, static_cast<int64_t>(auto_budget))
                                                     : 0;
    if (c.transformer_stream.resident_budget_bytes > 0)
        c.reason += str("; blocks stay resident up to ", c.transformer_stream.resident_budget_bytes / 1e9, " GB",
                        requested_budget >= 0 ? " (--resident-budget)" : "");
    c.transformer_stream.e4m3_groups = stream_e4m3;
    if (stream_e4m3 > 0) c.reason += str("; up to ", stream_e4m3, " streamed blocks as E4M3 (--stream-e4m3)");
    return c;
}

OffloadChoice choose_offload(const std::string& flag, const Flux2Config& transformer,
                             const TextEncoderFootprint* text_encoder, const BackendOptions& options,
                             const Backend& backend, bool sequential, int64_t requested_budget, int stream_e4m3) {
    const bool on_gpu = backend.name() != "cpu";
    const int64_t dit = resident_weight_bytes(transformer, nullptr, options, on_gpu);
    const int64_t te = resident_weight_bytes(transformer, text_encoder, options, on_gpu) - dit;
    const int64_t largest = std::max(dit, te);
    return choose_offload(flag, sequential ? largest : dit + te, largest, backend.memory_available_bytes(),
                          requested_budget, stream_e4m3);
}

void log_layer_stream(const char* component, const std::string& description) {
    if (description.empty()) {
        log_info("offload layers: the ", component, " computes from host memory on this backend; nothing to stream");
    } else {
        log_info("offload layers: ", component, ": ", description);
    }
}

void log_host_pinning(const char* component, const std::string& description) {
    if (!description.empty()) log_info("offload model: ", component, ": page-locked ", description, " for the uploads");
}

std::function<void()> release_before_decode(Offload mode, Flux2Transformer& transformer, Backend& backend) {
    if (mode == Offload::none) return {};
    return [mode, &transformer, &backend] {
        if (mode == Offload::model)
            log_debug("offload: transformer weights released (", transformer.release_device_weights(), " linears)");
        if (mode == Offload::layers) transformer.release_stream_buffers();
        backend.release_cached_memory();
    };
}

const char* offload_name(Offload mode) {
    switch (mode) {
        case Offload::model:
            return "model";
        case Offload::layers:
            return "layers";
        case Offload::none:
            break;
    }
    return "none";
}

}  // namespace flux2
