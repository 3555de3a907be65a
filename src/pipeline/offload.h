#pragma once
// --offload: which components keep their weights on the device, and for how long. The weights always stay in host
// memory (the backend prepares its device copy on first use, LinearWeight::prepared), so giving the device copy
// back costs only the upload at the next use.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "models/flux2/flux2_config.h"
#include "models/flux2/flux2_transformer.h"
#include "models/text_encoder/decoder_config.h"
#include "quant/weight_conversion.h"

namespace flux2 {

enum class Offload {
    none,    // every component stays on the device once used: the fastest, and the most memory
    model,   // each component is on the device only while it runs: the text encoder's weights go back once the
             // prompt is encoded, the transformer's before the VAE decode; every request uploads them again
    layers,  // the text encoder's and the transformer's linears stay in page-locked host memory and each layer
             // (block) is copied to the device while the one before computes (Backend::stream_layers)
};

struct OffloadChoice {
    Offload mode = Offload::none;
    std::string reason;  // for the log: the flag, or auto's estimate against the device's memory
    // layers: how the transformer's blocks stream (Flux2Transformer::stream_block_weights): the device memory
    // whole blocks may keep resident, and the streamed blocks whose NVFP4 weights travel as E4M3 (--stream-e4m3).
    LayerStreamOptions transformer_stream{};
};

// What the text encoder puts on the device: its shape, the decoder layers that run (up to the deepest hidden layer
// read: dev's 30 of Mistral's 40), how its file stores the linears, and --text-encoder-precision.
struct TextEncoderFootprint {
    DecoderConfig config;
    int64_t layers_run = 0;
    WeightFormat stored = WeightFormat::dense;  // of a middle layer's MLP linears, most of the weights
    WeightPrecision precision = WeightPrecision::as_stored;
};
// From a text encoder's file header and the hidden layers read (empty: the family's default, dev 30, klein 27).
TextEncoderFootprint text_encoder_footprint(const std::string& path, const std::vector<int>& out_layers,
                                            WeightPrecision precision);

// What the text encoder and the transformer hold on the device once both ran, from their shapes and the paths
// their linears take: bytes per weight 4 on the CPU (f32 copies), 2 on the bf16 path, 1 on fp8, 0.5625 with
// NVFP4 residency. The text encoder's 16-bit linears are converted per --text-encoder-precision (else BF16 on a
// GPU); FP8 and NVFP4 files run as the transformer's layers of those formats.
// text_encoder null: the transformer alone (`generate` runs the text encoder before the transformer loads).
int64_t resident_weight_bytes(const Flux2Config& transformer, const TextEncoderFootprint* text_encoder,
                              const BackendOptions& backend, bool on_gpu);

// "none", "model", "layers" or "auto". auto keeps kAutoOffloadShare of the device's available memory
// (`device_bytes`) for weights (the rest is for activations: dev's whole pipeline at 1024² needs 5.4-6.4 GB beside
// the resident blocks, PERFORMANCE.md): none when what is resident at once without offloading (`together_bytes`)
// fits there, model when the largest component alone does, layers otherwise.
// The resident budget of layers mode is `requested_budget` when given (>= 0); else 0 for --offload layers, and
// for auto what kAutoOffloadShare of the device leaves beside kActivationReserve. `stream_e4m3` (--stream-e4m3,
// layers or auto only) is passed on when layers is the mode.
inline constexpr double kAutoOffloadShare = 0.8;
inline constexpr int64_t kActivationReserve = int64_t{8} << 30;
OffloadChoice choose_offload(const std::string& flag, int64_t together_bytes, int64_t largest_component_bytes,
                             int64_t device_bytes, int64_t requested_budget = -1, int stream_e4m3 = 0);

// The choice for a pipeline on `backend`: the estimates above (on the GPU unless the backend is the CPU's) against
// the memory available to it (Backend::memory_available_bytes: other processes' use left out). `sequential`: the
// text encoder is gone before the transformer loads (`generate`), so only the larger of the two is ever resident;
// otherwise (the engine) both are.
OffloadChoice choose_offload(const std::string& flag, const Flux2Config& transformer,
                             const TextEncoderFootprint* text_encoder, const BackendOptions& options,
                             const Backend& backend, bool sequential, int64_t requested_budget = -1,
                             int stream_e4m3 = 0);

// Logs what a component streams under --offload layers (LayerStream::describe; empty: nothing to stream).
void log_layer_stream(const char* component, const std::string& description);
// Logs what a component page-locked for its uploads under --offload model (HostPinning::describe; empty: nothing).
void log_host_pinning(const char* component, const std::string& description);

// GenerateParams::before_decode under an offloading mode (empty for none): the transformer's device weights go back
// (model) or its streaming buffers (layers), then the memory the backend keeps for reuse
// (Backend::release_cached_memory: the recorded step's intermediates, mapped again at the next step), so that the
// decode's activations take their place.
std::function<void()> release_before_decode(Offload mode, Flux2Transformer& transformer, Backend& backend);

const char* offload_name(Offload mode);

}  // namespace flux2
