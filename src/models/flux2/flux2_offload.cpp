// Flux2Transformer under --offload: giving the device weights back between requests (model; their host bytes
// page-locked for the uploads) and streaming the blocks' weights through the device around each block (layers).
#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_transformer.h"

namespace flux2 {

int Flux2Transformer::release_device_weights() {
    check(!in_rank_group(),
          "releasing the transformer's device weights (--offload model) is for one device, not a rank group");
    replays_.clear();  // recordings hold the prepared buffers
    conditioning_cache_.clear();
    int released = 0;
    for (LinearWeight* w : all_linears()) released += release_prepared(*w) > 0;
    return released;
}

std::string Flux2Transformer::stream_block_weights(const LayerStreamOptions& options) {
    check(!in_rank_group(),
          "streaming the transformer's weights (--offload layers) is for one device, not a rank group");
    replays_.clear();  // recordings hold the resident weights' buffers
    conditioning_cache_.clear();
    conditioning_pinning_.reset();
    layer_stream_.reset();
    std::vector<std::vector<const LinearWeight*>> groups;
    for (const std::vector<LinearWeight*>& block : block_linears()) groups.emplace_back(block.begin(), block.end());
    layer_stream_ = backend_->stream_layers(groups, options);
    if (!layer_stream_) return std::string();
    // precompute_conditioning gives the conditioning linears' device copies back after each use: page-locked, they
    // come back at the bus's full speed.
    conditioning_pinning_ = backend_->pin_host_weights(conditioning_linears());
    return layer_stream_->describe();
}

void Flux2Transformer::release_stream_buffers() {
    if (layer_stream_) layer_stream_->release_buffers();
}

std::string Flux2Transformer::pin_host_weights() {
    host_pinning_.reset();
    const std::vector<LinearWeight*> linears = all_linears();
    host_pinning_ = backend_->pin_host_weights({linears.begin(), linears.end()});
    return host_pinning_ ? host_pinning_->describe() : std::string();
}

}  // namespace flux2
