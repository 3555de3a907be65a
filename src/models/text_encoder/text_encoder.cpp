#include "models/text_encoder/text_encoder.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/log.h"
#include "models/text_encoder/decoder_checkpoint.h"
#include "quant/float_codecs.h"

namespace flux2 {

namespace {

struct RopeTables {
    Tensor cos, sin;  // [L, head_dim]
};

// transformers' default RoPE in fp32, step by step: inv_freq = 1 / theta^(fl(2i / Dh)), angle = fl(pos * inv_freq),
// the Dh/2 angles repeated for both halves (rotate_half layout). Each step is rounded to float as torch does, so
// the tables agree with the reference to an ulp even at position 511 with theta 1e9.
RopeTables rope_tables(int64_t length, int64_t head_dim, double theta, bool bf16_frequencies) {
    const int64_t half = head_dim / 2;
    std::vector<float> inv_freq(half);
    const auto base = static_cast<double>(static_cast<float>(theta));
    for (int64_t i = 0; i < half; ++i) {
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
        inv_freq[i] = 1.0f / static_cast<float>(std::pow(base, static_cast<double>(exponent)));
        if (bf16_frequencies) inv_freq[i] = bf16_to_f32(f32_to_bf16(inv_freq[i]));
    }
    std::vector<float> c(length * head_dim), s(length * head_dim);
    for (int64_t p = 0; p < length; ++p) {
        for (int64_t i = 0; i < half; ++i) {
            const double angle = static_cast<float>(p) * inv_freq[i];
            const auto cv = static_cast<float>(std::cos(angle)), sv = static_cast<float>(std::sin(angle));
            c[p * head_dim + i] = c[p * head_dim + half + i] = cv;
            s[p * head_dim + i] = s[p * head_dim + half + i] = sv;
        }
    }
    return {Tensor::from_f32({length, head_dim}, std::move(c)), Tensor::from_f32({length, head_dim}, std::move(s))};
}

// One row of a BF16/F16/F32 matrix straight from the file mapping.
void read_row(const TensorInfo& t, int64_t row, int64_t cols, float* out) {
    const size_t size = dtype_size(t.dtype);
    const uint8_t* p = t.data + static_cast<size_t>(row) * static_cast<size_t>(cols) * size;
    for (int64_t i = 0; i < cols; ++i) {
        if (t.dtype == DType::F32) {
            std::memcpy(out + i, p + 4 * i, 4);
        } else {
            uint16_t bits;
            std::memcpy(&bits, p + 2 * i, 2);
            out[i] = t.dtype == DType::BF16 ? bf16_to_f32(bits) : f16_to_f32(bits);
        }
    }
}

}  // namespace

std::vector<int64_t> flux2_hidden_layers(DecoderFamily family) {
    return family == DecoderFamily::mistral ? std::vector<int64_t>{10, 20, 30} : std::vector<int64_t>{9, 18, 27};
}

TextEncoder TextEncoder::load(const std::string& path, const std::vector<int64_t>& layers, Backend& backend,
                              const TextEncoderOptions& options) {
    DecoderCheckpoint ckpt = DecoderCheckpoint::open(path);
    return load(ckpt, ckpt.config(), layers, backend, options);
}

TextEncoder TextEncoder::load(WeightSource& weights, const DecoderConfig& c, const std::vector<int64_t>& layers,
                              Backend& backend, const TextEncoderOptions& options) {
    log_info(c.summary());
    check(!layers.empty(), "text encoder: no hidden-state layers requested");
    for (int64_t k : layers)
        check(k >= 0 && k <= c.num_hidden_layers, "text encoder: hidden-state layer ", k, " is out of range [0, ",
              c.num_hidden_layers, "] for this ", c.num_hidden_layers, "-layer model");
    const int64_t depth = *std::max_element(layers.begin(), layers.end());
    const bool final_norm = depth == c.num_hidden_layers;
    const int64_t D = c.hidden_size, Dh = c.head_dim;

    TextEncoder m;
    m.config_ = c;
    m.layers_ = layers;
    m.options_ = options;
    m.backend_ = &backend;
    if (auto* file = dynamic_cast<DecoderCheckpoint*>(&weights)) {
        m.embed_mapped_ = &file->take_mapped("model.embed_tokens.weight", {c.vocab_size, D});
        m.embed_file_ = file->checkpoint();
        file->allow_unused(depth, final_norm);
    } else {
        m.embed_f32_ = weights.take_f32("model.embed_tokens.weight", {c.vocab_size, D});
    }
    auto gain = [&](const std::string& name, int64_t n) { return backend.upload(weights.take_f32(name, {n})); };
    int64_t linears = 0, converted = 0;
    auto linear = [&](const std::string& name, int64_t out, int64_t in) {
        bool changed = false;
        LinearWeight w = convert_weight(weights.take_linear(name, out, in), options.weights, &changed);
        ++linears;
        converted += changed;
        return w;
    };
    for (int64_t i = 0; i < depth; ++i) {
        const std::string p = str("model.layers.", i, ".");
        Layer l;
        l.input_norm = gain(p + "input_layernorm.weight", D);
        l.post_attention_norm = gain(p + "post_attention_layernorm.weight", D);
        l.q_proj = linear(p + "self_attn.q_proj", c.q_dim(), D);
        l.k_proj = linear(p + "self_attn.k_proj", c.kv_dim(), D);
        l.v_proj = linear(p + "self_attn.v_proj", c.kv_dim(), D);
        l.o_proj = linear(p + "self_attn.o_proj", D, c.q_dim());
        if (c.qk_norm()) {
            l.q_norm = gain(p + "self_attn.q_norm.weight", Dh);
            l.k_norm = gain(p + "self_attn.k_norm.weight", Dh);
        }
        l.gate_proj = linear(p + "mlp.gate_proj", c.intermediate_size, D);
        l.up_proj = linear(p + "mlp.up_proj", c.intermediate_size, D);
        l.down_proj = linear(p + "mlp.down_proj", D, c.intermediate_size);
        m.decoder_layers_.push_back(std::move(l));
    }
    if (final_norm) m.final_norm_ = gain("model.norm.weight", D);
    weights.finish();
    log_info("loaded text encoder layers 0..", depth - 1, " of ", c.num_hidden_layers, " from ", weights.describe());
    if (options.weights != WeightPrecision::as_stored)
        log_info("text encoder: ", converted, " of ", linears, " linears converted to ",
                 weight_precision_name(options.weights),
                 converted < linears ? " (the others were already quantized "
                                       "in the file or do not fit the format)"
                                     : "");
    return m;
}

void TextEncoder::validate(const TokenBatch& t) const {
    check(t.batch > 0 && t.length > 0, "text encoder: empty token batch [", t.batch, ", ", t.length, "]");
    const auto n = static_cast<size_t>(t.batch * t.length);
    check(t.ids.size() == n && t.attention_mask.size() == n, "text encoder: ids (", t.ids.size(),
          ") and attention_mask (", t.attention_mask.size(), ") must both hold batch x length = ", n, " values");
    for (size_t i = 0; i < n; ++i) {
        check(t.ids[i] >= 0 && t.ids[i] < config_.vocab_size, "text encoder: token id ", t.ids[i], " at [",
              i / t.length, ", ", i % t.length, "] is outside the vocabulary [0, ", config_.vocab_size, ")");
        check(t.attention_mask[i] == 0 || t.attention_mask[i] == 1, "text encoder: attention_mask value ",
              t.attention_mask[i], " at [", i / t.length, ", ", i % t.length, "] is not 0 or 1");
    }
}

Tensor TextEncoder::embed(const TokenBatch& t) const {
    const int64_t D = config_.hidden_size;
    Tensor x = Tensor::zeros({t.batch, t.length, D});
    for (size_t i = 0; i < t.ids.size(); ++i) {
        float* row = x.f32() + i * D;
        if (embed_mapped_)
            read_row(*embed_mapped_, t.ids[i], D, row);
        else
            std::copy_n(embed_f32_.f32() + t.ids[i] * D, D, row);
    }
    return x;
}

Tensor TextEncoder::layer_forward(const Layer& l, const Tensor& x, const Tensor& cos, const Tensor& sin,
                                  const Tensor& key_mask) const {
    // x [B, L, hidden] -> [B, L, hidden]
    Backend& be = *backend_;
    const DecoderConfig& c = config_;
    const int64_t B = x.dim(0), L = x.dim(1);
    const auto eps = static_cast<float>(c.rms_norm_eps);

    Tensor n = be.rms_norm(x, l.input_norm, eps);
    Tensor q = be.linear(n, l.q_proj).reshape({B, L, c.num_attention_heads, c.head_dim});
    Tensor k = be.linear(n, l.k_proj).reshape({B, L, c.num_key_value_heads, c.head_dim});
    Tensor v = be.linear(n, l.v_proj).reshape({B, L, c.num_key_value_heads, c.head_dim});
    if (c.qk_norm()) {  // Qwen3: per-head RMSNorm before RoPE
        q = be.rms_norm(q, l.q_norm, eps);
        k = be.rms_norm(k, l.k_norm, eps);
    }
    q = be.rope_half(q, cos, sin);
    k = be.rope_half(k, cos, sin);
    Tensor h = be.add(x, be.linear(be.causal_attention(q, k, v, key_mask), l.o_proj));

    n = be.rms_norm(h, l.post_attention_norm, eps);
    Tensor mlp = be.mul(be.silu(be.linear(n, l.gate_proj)), be.linear(n, l.up_proj));
    return be.add(h, be.linear(mlp, l.down_proj));
}

Tensor TextEncoder::encode(const TokenBatch& t) const {
    // ids [B, L] -> the requested hidden states side by side per token, stacked on the backend (one copy each into
    // its column range) and downloaded once.
    validate(t);
    Backend& be = *backend_;
    const int64_t D = config_.hidden_size;
    RopeTables rope = rope_tables(t.length, config_.head_dim, config_.rope_theta, options_.bf16_rope_frequencies);
    const Tensor cos = be.upload(rope.cos), sin = be.upload(rope.sin);
    std::vector<float> mask(t.attention_mask.begin(), t.attention_mask.end());
    const Tensor key_mask = be.upload(Tensor::from_f32({t.batch, t.length}, std::move(mask)));

    Tensor stacked = be.uninitialized({t.batch, t.length, static_cast<int64_t>(layers_.size()) * D});
    auto keep = [&](int64_t k, const Tensor& h) {
        for (size_t j = 0; j < layers_.size(); ++j) {
            if (layers_[j] != k) continue;
            // transformers replaces the last entry of hidden_states by the final-normed output.
            const bool last = k == config_.num_hidden_layers;
            be.copy_into(last ? be.rms_norm(h, final_norm_, static_cast<float>(config_.rms_norm_eps)) : h, 0, D,
                         stacked, 0, static_cast<int64_t>(j) * D);
        }
    };
    Tensor x = be.upload(embed(t));
    keep(0, x);
    for (size_t i = 0; i < decoder_layers_.size(); ++i) {
        if (layer_stream_) layer_stream_->enter(i);
        x = layer_forward(decoder_layers_[i], x, cos, sin, key_mask);
        if (layer_stream_) layer_stream_->leave(i);
        keep(static_cast<int64_t>(i) + 1, x);
    }
    Tensor out = be.download(stacked);
    if (layer_stream_) layer_stream_->release_buffers();
    return out;
}

int TextEncoder::release_device_weights() const {
    int released = 0;
    for (const Layer& l : decoder_layers_)
        for (const LinearWeight* w : l.linears()) released += release_prepared(*w) > 0;
    return released;
}

std::string TextEncoder::pin_host_weights() {
    host_pinning_.reset();
    std::vector<const LinearWeight*> linears;
    for (const Layer& l : decoder_layers_)
        for (const LinearWeight* w : l.linears()) linears.push_back(w);
    host_pinning_ = backend_->pin_host_weights(linears);
    return host_pinning_ ? host_pinning_->describe() : std::string();
}

std::string TextEncoder::stream_layer_weights() {
    layer_stream_.reset();
    std::vector<std::vector<const LinearWeight*>> groups;
    for (const Layer& l : decoder_layers_) groups.push_back(l.linears());
    layer_stream_ = backend_->stream_layers(groups, LayerStreamOptions{});
    return layer_stream_ ? layer_stream_->describe() : std::string();
}

}  // namespace flux2
