#include "models/text_encoder/decoder_config.h"

#include "core/error.h"

namespace flux2 {

const char* decoder_family_name(DecoderFamily family) {
    switch (family) {
        case DecoderFamily::qwen3:
            return "qwen3";
        case DecoderFamily::mistral:
            return "mistral";
    }
    return "unknown";
}

namespace {

bool has_value(const nlohmann::json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

int64_t require_int(const nlohmann::json& j, const char* key, const std::string& origin) {
    check(has_value(j, key), origin, ": \"", key, "\" is missing");
    check(j[key].is_number_integer(), origin, ": \"", key, "\" must be an integer, got ", j[key].dump());
    return j[key].get<int64_t>();
}

// transformers < 5 writes rope_theta at the top level; transformers >= 5 nests it in rope_parameters (the tiny test
// configs). Either may carry rope_type / rope_scaling, which this decoder does not implement beyond "default".
double read_rope_theta(const nlohmann::json& j, const std::string& origin) {
    const nlohmann::json* rope = nullptr;
    if (has_value(j, "rope_parameters")) {
        rope = &j["rope_parameters"];
        check(rope->is_object(), origin, ": rope_parameters must be an object");
        if (has_value(*rope, "rope_type"))
            check((*rope)["rope_type"] == "default", origin, ": rope_parameters.rope_type ",
                  (*rope)["rope_type"].dump(), " is not supported (only \"default\" RoPE)");
    }
    check(!has_value(j, "rope_scaling"), origin, ": rope_scaling ",
          has_value(j, "rope_scaling") ? j["rope_scaling"].dump() : "", " is not supported (only default RoPE)");
    const bool top = has_value(j, "rope_theta");
    const bool nested = rope && has_value(*rope, "rope_theta");
    check(top || nested, origin, ": no rope_theta (looked at the top level and under rope_parameters)");
    const double theta = nested ? (*rope)["rope_theta"].get<double>() : j["rope_theta"].get<double>();
    if (top && nested)
        check(j["rope_theta"].get<double>() == theta, origin, ": rope_theta ", j["rope_theta"].get<double>(),
              " and rope_parameters.rope_theta ", theta, " disagree");
    return theta;
}

DecoderFamily read_family(const nlohmann::json& j, const std::string& origin) {
    check(has_value(j, "model_type") && j["model_type"].is_string(), origin, ": \"model_type\" is missing");
    const std::string type = j["model_type"];
    if (type == "qwen3") return DecoderFamily::qwen3;
    if (type == "mistral") return DecoderFamily::mistral;
    fail(origin, ": model_type \"", type, "\" is not a FLUX.2 text encoder (expected qwen3, mistral or mistral3)");
}

}  // namespace

DecoderConfig DecoderConfig::from_json(const nlohmann::json& root, const std::string& origin) {
    check(root.is_object(), origin, ": expected a JSON object");
    // Mistral3ForConditionalGeneration keeps the language model's settings under text_config.
    const bool nested = root.value("model_type", "") == "mistral3" || has_value(root, "text_config");
    const nlohmann::json& j = nested ? root["text_config"] : root;
    const std::string where = nested ? origin + " (text_config)" : origin;
    check(j.is_object(), where, ": expected a JSON object");

    DecoderConfig c;
    try {
        c.family = read_family(j, where);
        c.vocab_size = require_int(j, "vocab_size", where);
        c.hidden_size = require_int(j, "hidden_size", where);
        c.intermediate_size = require_int(j, "intermediate_size", where);
        c.num_hidden_layers = require_int(j, "num_hidden_layers", where);
        c.num_attention_heads = require_int(j, "num_attention_heads", where);
        c.num_key_value_heads =
            has_value(j, "num_key_value_heads") ? require_int(j, "num_key_value_heads", where) : c.num_attention_heads;
        // transformers: head_dim = config.head_dim or hidden_size // num_attention_heads.
        c.head_dim = has_value(j, "head_dim") ? require_int(j, "head_dim", where)
                                              : (c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
        check(has_value(j, "rms_norm_eps"), where, ": \"rms_norm_eps\" is missing");
        c.rms_norm_eps = j["rms_norm_eps"].get<double>();
        c.rope_theta = read_rope_theta(j, where);

        const std::string act = j.value("hidden_act", "silu");
        check(act == "silu", where, ": hidden_act \"", act, "\" is not supported (SwiGLU with silu only)");
        check(!j.value("attention_bias", false), where, ": attention_bias = true is not supported");
        check(!j.value("mlp_bias", false), where, ": mlp_bias = true is not supported");
        // Qwen3 carries a sliding_window value that only acts with use_sliding_window; Mistral applies it when set.
        const bool window =
            c.family == DecoderFamily::qwen3 ? j.value("use_sliding_window", false) : has_value(j, "sliding_window");
        check(!window, where, ": sliding-window attention is not supported (sliding_window ",
              has_value(j, "sliding_window") ? j["sliding_window"].dump() : "null", ")");
        if (has_value(j, "layer_types"))
            for (const auto& t : j["layer_types"])
                check(t == "full_attention", where, ": layer type ", t.dump(), " is not supported (full_attention)");
    } catch (const nlohmann::json::exception& e) {
        fail(where, ": ", e.what());
    }
    c.source = origin;
    c.validate(where);
    return c;
}

DecoderConfig DecoderConfig::preset(const std::string& name) {
    // Values of the hub config.json files (Qwen/Qwen3-4B, Qwen/Qwen3-8B, the text_config of
    // mistralai/Mistral-Small-3.1-24B-Instruct-2503; 3.2 shares the architecture).
    DecoderConfig c;
    c.source = "preset " + name;
    if (name == "qwen3-4b" || name == "qwen3-8b") {
        const bool small = name == "qwen3-4b";
        c.family = DecoderFamily::qwen3;
        c.vocab_size = 151936;
        c.hidden_size = small ? 2560 : 4096;
        c.intermediate_size = small ? 9728 : 12288;
        c.num_hidden_layers = 36;
        c.num_attention_heads = 32;
        c.num_key_value_heads = 8;
        c.head_dim = 128;
        c.rms_norm_eps = 1e-6;
        c.rope_theta = 1e6;
        return c;
    }
    if (name == "mistral-small-3") {
        c.family = DecoderFamily::mistral;
        c.vocab_size = 131072;
        c.hidden_size = 5120;
        c.intermediate_size = 32768;
        c.num_hidden_layers = 40;
        c.num_attention_heads = 32;
        c.num_key_value_heads = 8;
        c.head_dim = 128;
        c.rms_norm_eps = 1e-5;
        c.rope_theta = 1e9;
        return c;
    }
    fail("unknown text encoder preset '", name, "' (expected qwen3-4b, qwen3-8b or mistral-small-3)");
}

void DecoderConfig::validate(const std::string& origin) const {
    check(vocab_size > 0 && hidden_size > 0 && intermediate_size > 0 && num_hidden_layers > 0, origin,
          ": vocab_size, hidden_size, intermediate_size and num_hidden_layers must be positive (", vocab_size, ", ",
          hidden_size, ", ", intermediate_size, ", ", num_hidden_layers, ")");
    check(num_attention_heads > 0 && num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0, origin,
          ": num_attention_heads ", num_attention_heads, " must be a positive multiple of num_key_value_heads ",
          num_key_value_heads);
    check(head_dim > 0 && head_dim % 2 == 0, origin, ": head_dim ", head_dim, " must be positive and even (RoPE)");
    check(rms_norm_eps > 0 && rope_theta > 0, origin, ": rms_norm_eps ", rms_norm_eps, " and rope_theta ", rope_theta,
          " must be positive");
}

std::string DecoderConfig::summary() const {
    return str("text encoder ", decoder_family_name(family), ": hidden ", hidden_size, ", ", num_hidden_layers,
               " layers, ", num_attention_heads, " heads / ", num_key_value_heads, " kv heads x ", head_dim, ", MLP ",
               intermediate_size, ", vocab ", vocab_size, ", eps ", rms_norm_eps, ", rope theta ", rope_theta,
               qk_norm() ? ", q/k RMSNorm" : "", " (", source, ")");
}

}  // namespace flux2
