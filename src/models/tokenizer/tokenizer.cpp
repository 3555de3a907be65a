#include "models/tokenizer/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/gzip_file.h"
#include "models/tokenizer/added_vocabulary.h"
#include "models/tokenizer/bpe.h"
#include "models/tokenizer/decoder.h"
#include "models/tokenizer/limits.h"
#include "models/tokenizer/normalizer.h"
#include "models/tokenizer/post_processor.h"
#include "models/tokenizer/pretokenizer.h"
#include "models/tokenizer/utf8.h"

namespace flux2 {

namespace fs = std::filesystem;

struct Tokenizer::Impl {
    std::string source;
    AddedVocabulary added;
    std::unique_ptr<Normalizer> normalizer;
    std::unique_ptr<PreTokenizer> pre_tokenizer;
    std::unique_ptr<BpeModel> model;
    std::unique_ptr<PostProcessor> post_processor;
    std::unique_ptr<Decoder> decoder;
    TokenizerConfig config;
    std::string normalizer_name;

    // Normalizes, pre-tokenizes and BPE-encodes text that holds no raw-matched added token.
    void encode_plain(std::string_view text, std::vector<int32_t>& ids) const {
        std::string part(text);
        if (normalizer) normalizer->normalize(part);
        std::vector<TextSegment> segments;
        if (added.has_normalized_tokens())
            added.split(part, /*normalized=*/true, segments);
        else
            segments.push_back({0, part.size(), -1});
        std::vector<std::string> pieces;
        for (const TextSegment& s : segments) {
            if (s.id >= 0) {
                ids.push_back(s.id);
                continue;
            }
            pieces.assign(1, part.substr(s.begin, s.end - s.begin));
            if (pre_tokenizer) pre_tokenizer->split(pieces);
            for (const std::string& p : pieces)
                if (!p.empty()) model->encode(p, ids);
        }
    }
};

namespace {

nlohmann::json parse_json(const std::string& text, const std::string& where) {
    try {
        return nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail(where, ": invalid JSON: ", e.what());
    }
}

const nlohmann::json& member(const nlohmann::json& spec, const char* key) {
    static const nlohmann::json null;
    return spec.contains(key) ? spec.at(key) : null;
}

[[noreturn]] void fail_tekken(const std::string& where) {
    fail(where, " is a mistral-common tekken.json, which is not supported: its format is defined only by ",
         "mistral-common's code. Use the tokenizer.json of the Hugging Face repository (Mistral-Small-3.1 ships one)");
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_json(const std::string& tokenizer_json, const std::string& config_json,
                               const std::string& where, const std::string& config_where) {
    auto impl = std::make_unique<Impl>();
    try {
        read_spec(*impl, parse_json(tokenizer_json, where), where);
    } catch (const nlohmann::json::exception& e) {
        // The parts check the keys they know; this catches a wrong type anywhere else.
        fail(where, ": unexpected JSON value: ", e.what());
    }
    if (!config_json.empty()) {
        try {
            impl->config = parse_tokenizer_config(parse_json(config_json, config_where), config_where);
        } catch (const nlohmann::json::exception& e) {
            fail(config_where, ": unexpected JSON value: ", e.what());
        }
    }
    return Tokenizer(std::move(impl));
}

void Tokenizer::read_spec(Impl& impl, const nlohmann::json& spec, const std::string& where) {
    check(spec.is_object(), where, ": tokenizer.json must hold a JSON object");
    if (!spec.contains("model") && spec.contains("config") && spec.contains("vocab")) fail_tekken(where);
    check(spec.contains("model"), where, ": no \"model\" section (not a Hugging Face tokenizer.json)");

    impl.source = where;
    impl.added = AddedVocabulary(member(spec, "added_tokens"), where);
    impl.normalizer = make_normalizer(member(spec, "normalizer"), where);
    impl.normalizer_name =
        member(spec, "normalizer").is_null() ? "none" : member(spec, "normalizer").value("type", "?");
    impl.pre_tokenizer = make_pre_tokenizer(member(spec, "pre_tokenizer"), where);
    impl.model = std::make_unique<BpeModel>(spec.at("model"), where);
    impl.post_processor = make_post_processor(member(spec, "post_processor"), where);
    impl.decoder = make_decoder(member(spec, "decoder"), where);
}

Tokenizer Tokenizer::load(const std::string& path) {
    fs::path file = path;
    if (fs::is_directory(file)) {
        if (fs::exists(file / "tokenizer.json"))
            file /= "tokenizer.json";
        else if (fs::exists(file / "tokenizer.json.gz"))
            file /= "tokenizer.json.gz";
        else if (fs::exists(file / "tekken.json"))
            fail_tekken((file / "tekken.json").string());
        else
            fail("no tokenizer.json or tokenizer.json.gz in ", path);
    }
    check(fs::exists(file), "tokenizer file ", file.string(), " does not exist");
    const fs::path config_path = file.parent_path() / "tokenizer_config.json";
    const std::string config_json =
        fs::exists(config_path) ? read_file_maybe_gzip(config_path.string(), kMaxTokenizerConfigBytes) : "";
    Tokenizer tok = from_json(read_file_maybe_gzip(file.string(), kMaxTokenizerJsonBytes), config_json, file.string(),
                              config_path.string());
    if (!config_json.empty()) tok.impl_->config.source = config_path.string();
    return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
    if (const size_t bad = utf8_first_invalid(text); bad != utf8_valid)
        fail("text to tokenize is not valid UTF-8: bad byte 0x", std::hex,
             static_cast<int>(static_cast<unsigned char>(text[bad])), std::dec, " at offset ", bad, " of ",
             text.size());
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 8);
    std::vector<TextSegment> segments;
    impl_->added.split(text, /*normalized=*/false, segments);
    for (const TextSegment& s : segments) {
        if (s.id >= 0)
            ids.push_back(s.id);
        else
            impl_->encode_plain(text.substr(s.begin, s.end - s.begin), ids);
    }
    if (add_special_tokens && impl_->post_processor) impl_->post_processor->add_special_tokens(ids);
    return ids;
}

std::vector<int32_t> Tokenizer::encode_to_length(std::string_view text, bool add_special_tokens, int max_length,
                                                 std::vector<int32_t>* attention_mask) const {
    check(max_length > 0 && max_length <= kMaxEncodeLength, "max_length must be 1 to ", kMaxEncodeLength, ", got ",
          max_length);
    const size_t n_special =
        add_special_tokens && impl_->post_processor ? impl_->post_processor->added_count() : size_t{0};
    check(n_special <= static_cast<size_t>(max_length), "max_length ", max_length, " cannot hold the ", n_special,
          " special tokens that ", impl_->source, " adds");
    std::vector<int32_t> ids = encode(text, /*add_special_tokens=*/false);
    // As in transformers, the text is truncated first, leaving room for the special tokens.
    const size_t room = static_cast<size_t>(max_length) - n_special;
    if (ids.size() > room) {
        if (impl_->config.truncation_side == Side::right)
            ids.resize(room);
        else
            ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(room));
    }
    if (add_special_tokens && impl_->post_processor) impl_->post_processor->add_special_tokens(ids);

    const size_t n_real = ids.size(), n_pad = static_cast<size_t>(max_length) - n_real;
    if (n_pad > 0) {
        const int32_t pad = pad_id();
        if (impl_->config.padding_side == Side::right)
            ids.insert(ids.end(), n_pad, pad);
        else
            ids.insert(ids.begin(), n_pad, pad);
    }
    if (attention_mask) {
        attention_mask->assign(static_cast<size_t>(max_length), 1);
        if (impl_->config.padding_side == Side::right)
            std::fill(attention_mask->begin() + static_cast<std::ptrdiff_t>(n_real), attention_mask->end(), 0);
        else
            std::fill(attention_mask->begin(), attention_mask->begin() + static_cast<std::ptrdiff_t>(n_pad), 0);
    }
    return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        if (const AddedToken* t = impl_->added.find(id)) {
            if (!(skip_special_tokens && t->special)) tokens.push_back(t->content);
            continue;
        }
        const std::string* t = impl_->model->id_to_token(id);
        check(t != nullptr, "cannot decode id ", id, ": not in ", impl_->source);
        tokens.push_back(*t);
    }
    if (!impl_->decoder) {
        std::string out;
        for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
        return out;
    }
    impl_->decoder->decode_chain(tokens);
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
    if (const AddedToken* t = impl_->added.find(token)) return t->id;
    return impl_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
    if (const AddedToken* t = impl_->added.find(id)) return t->content;
    const std::string* t = impl_->model->id_to_token(id);
    check(t != nullptr, "id ", id, " is not a token of ", impl_->source);
    return *t;
}

bool Tokenizer::is_added_token(std::string_view token) const { return impl_->added.find(token) != nullptr; }

int32_t Tokenizer::vocab_size() const {
    int32_t n = impl_->model->id_bound();
    for (const AddedToken& t : impl_->added.tokens()) n = std::max(n, t.id + 1);
    return n;
}

int32_t Tokenizer::pad_id() const {
    const std::string& pad = impl_->config.pad_token;
    if (pad.empty() && impl_->config.source.empty())
        fail("cannot pad: no tokenizer_config.json was found for ", impl_->source);
    check(!pad.empty(), "cannot pad: ", impl_->config.source, " defines no pad_token");
    const int32_t id = token_to_id(pad);
    check(id >= 0, "pad_token \"", pad, "\" of ", impl_->config.source, " is not a token of ", impl_->source);
    return id;
}

const TokenizerConfig& Tokenizer::config() const { return impl_->config; }

std::string Tokenizer::describe() const {
    size_t n_special = 0;
    for (const AddedToken& t : impl_->added.tokens()) n_special += t.special;
    const auto& c = impl_->config;
    return str(impl_->source, ": BPE ", impl_->model->vocab_size(), " tokens, ", impl_->model->merge_count(),
               " merges, ", impl_->added.tokens().size(), " added tokens (", n_special, " special), normalizer ",
               impl_->normalizer_name, ", pad ", c.pad_token.empty() ? "(none)" : c.pad_token, " on the ",
               side_name(c.padding_side), ", truncation on the ", side_name(c.truncation_side),
               c.source.empty() ? " (no tokenizer_config.json)" : "");
}

void Tokenizer::clear_cache() const { impl_->model->clear_cache(); }

}  // namespace flux2
