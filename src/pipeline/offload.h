#pragma once
// --offload: which components keep their weights on the device between runs. The weights always stay in host
// memory (the backend prepares its device copy on first use, LinearWeight::prepared), so giving the device copy
// back costs only the upload at the next use.
#include <cstdint>
#include <functional>
#include <string>

#include "backend/backend.h"
#include "models/flux2/flux2_config.h"
#include "models/flux2/flux2_transformer.h"
#include "models/text_encoder/decoder_config.h"
#include "quant/weight_conversion.h"

namespace flux2 {

enum class Offload {
    none,   // every component stays on the device once used: the fastest, and the most memory
    model,  // each component is on the device only while it runs: the text encoder's weights go back once the
            // prompt is encoded, the transformer's before the VAE decode; every request uploads them again
};

struct OffloadChoice {
    Offload mode = Offload::none;
    std::string reason;  // for the log: the flag, or auto's estimate against the device's memory
};

// What the text encoder and the transformer hold on the device once both ran, from their shapes and the paths
// their linears take: bytes per weight 4 on the CPU (f32 copies), 2 on the bf16 path, 1 on fp8, 0.5625 with
// NVFP4 residency; the text encoder per --text-encoder-precision (bf16 weights run as bf16 on a GPU).
// text_encoder null: the transformer alone (`generate` runs the text encoder before the transformer loads).
int64_t resident_weight_bytes(const Flux2Config& transformer, const DecoderConfig* text_encoder,
                              const BackendOptions& backend, WeightPrecision text_encoder_weights, bool on_gpu);

// "none", "model" or "auto": model when the resident weights would take more than kAutoOffloadShare of the
// device's memory (the rest is for activations: dev at 1024² needs ~7 GB), else none.
inline constexpr double kAutoOffloadShare = 0.8;
OffloadChoice choose_offload(const std::string& flag, int64_t resident_bytes, int64_t device_bytes);

// The choice for a pipeline on `backend`: the estimate above (on the GPU unless the backend is the CPU's) against
// the backend's memory.
OffloadChoice choose_offload(const std::string& flag, const Flux2Config& transformer, const DecoderConfig* text_encoder,
                             const BackendOptions& options, WeightPrecision text_encoder_weights,
                             const Backend& backend);

// GenerateParams::before_decode under --offload model: the transformer's device weights go back before the decode.
std::function<void()> release_before_decode(Flux2Transformer& transformer);

const char* offload_name(Offload mode);

}  // namespace flux2
