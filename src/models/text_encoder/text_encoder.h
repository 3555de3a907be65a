#pragma once
// The FLUX.2 text encoder: a Llama-style decoder (Qwen3 for klein, Mistral-Small-3.x for dev) run once over the
// tokenized prompt, returning the hidden states of chosen layers stacked per token (FLUX2_SPEC.md §2.2, §4).
//
// Per layer: x += o_proj(attn(rope(qk_norm?(q_proj(n))), rope(qk_norm?(k_proj(n))), v_proj(n))), n = rms_norm(x);
// then x += down_proj(silu(gate_proj(n)) * up_proj(n)), n = rms_norm(x). Attention is causal with a key padding
// mask and grouped KV heads; RoPE positions are 0..L-1 whatever the padding, as transformers computes them.
//
// Only the layers up to the deepest requested one are loaded and run, so the 40-layer Mistral stops after layer
// 30. The object owns all its weights: destroy it before loading the transformer (docs/TEXT_ENCODER.md).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/checkpoint.h"
#include "models/text_encoder/decoder_config.h"
#include "models/weight_source.h"
#include "quant/linear_weight.h"
#include "quant/weight_conversion.h"
#include "tensor/tensor.h"

namespace flux2 {

// Token ids of a padded batch, row-major [batch, length].
struct TokenBatch {
    int64_t batch = 0;
    int64_t length = 0;
    std::vector<int64_t> ids;
    std::vector<int64_t> attention_mask;  // 1 = token, 0 = padding (left or right)
};

struct TextEncoderOptions {
    // Round RoPE's inverse frequencies to bf16, as a model that went through nn.Module.to(torch.bfloat16) has them
    // (that call also casts the non-persistent inv_freq buffer; from_pretrained(torch_dtype=bfloat16), the way
    // diffusers loads FLUX.2's encoders, keeps it fp32). The reference goldens were computed that way. Off by default.
    bool bf16_rope_frequencies = false;
    // 16-bit decoder linears converted at load (--text-encoder-precision); quantized files stay as they are.
    WeightPrecision weights = WeightPrecision::as_stored;
};

// The hidden layers FLUX.2 stacks from an encoder of this family: dev's Mistral 10, 20, 30; klein's Qwen3 9, 18, 27.
std::vector<int64_t> flux2_hidden_layers(DecoderFamily family);

class TextEncoder {
public:
    // `layers` are indices into transformers' hidden_states tuple: 0 = the token embeddings, k = the output of
    // decoder layer k (1-based). k = num_hidden_layers is, as in transformers, the final-normed last output.
    // FLUX.2 takes flux2_hidden_layers(family): dev {10, 20, 30}, klein {9, 18, 27}.
    // Weight names are DecoderCheckpoint's internal ones ("model.layers.N.self_attn.q_proj", ...). A
    // DecoderCheckpoint keeps the embedding table in its file mapping and may skip unused layers; any other source
    // (random weights for benchmarks and demo files) hands over the table as F32.
    static TextEncoder load(WeightSource& weights, const DecoderConfig& config, const std::vector<int64_t>& layers,
                            Backend& backend, const TextEncoderOptions& options = {});
    static TextEncoder load(const std::string& path, const std::vector<int64_t>& layers, Backend& backend,
                            const TextEncoderOptions& options = {});

    const DecoderConfig& config() const { return config_; }
    const std::vector<int64_t>& layers() const { return layers_; }

    // The FLUX.2 prompt embedding: the requested hidden states (hidden_states[k] for each k of layers(), in that
    // order) side by side per token, host F32 [B, L, n * hidden_size]
    // (= torch.stack(dim=1).permute(0, 2, 1, 3).reshape(B, L, n * hidden)).
    Tensor encode(const TokenBatch& tokens) const;
    // Gives the device copies of the linear weights back (--offload model); the next encode prepares them again.
    // Returns how many linears held one.
    int release_device_weights() const;
    // --offload layers: from now on each decoder layer's weights reach the device only around that layer
    // (Backend::stream_layers), through buffers held only while encode() runs (LayerStream::release_buffers: the
    // transformer and the VAE get that memory). Returns what streams, for the log ("" where the backend has nothing
    // to stream).
    std::string stream_layer_weights();
    // --offload model: page-locks the linears' host bytes for the uploads after each release
    // (Backend::pin_host_weights). Returns what was locked, for the log ("" where nothing was).
    std::string pin_host_weights();

private:
    struct Layer {
        Tensor input_norm, post_attention_norm;  // [hidden] on the backend
        Tensor q_norm, k_norm;                   // [head_dim] on the backend (Qwen3 only)
        LinearWeight q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj;
        std::vector<const LinearWeight*> linears() const {
            return {&q_proj, &k_proj, &v_proj, &o_proj, &gate_proj, &up_proj, &down_proj};
        }
    };

    void validate(const TokenBatch& tokens) const;
    Tensor embed(const TokenBatch& tokens) const;  // host F32 [B, L, hidden]
    Tensor layer_forward(const Layer& layer, const Tensor& x, const Tensor& cos, const Tensor& sin,
                         const Tensor& key_mask) const;

    DecoderConfig config_;
    std::vector<int64_t> layers_;
    TextEncoderOptions options_;
    Backend* backend_ = nullptr;
    // The token embedding table [vocab, hidden]: rows read from the file mapping (kept alive by embed_file_), or
    // an F32 host copy when the weights did not come from a file.
    Checkpoint embed_file_;
    const TensorInfo* embed_mapped_ = nullptr;
    Tensor embed_f32_;
    std::vector<Layer> decoder_layers_;
    Tensor final_norm_;  // only when num_hidden_layers is requested
    // Last, so that they go first: they hold the layers' host weights page-locked.
    std::unique_ptr<LayerStream> layer_stream_;
    std::unique_ptr<HostPinning> host_pinning_;
};

}  // namespace flux2
