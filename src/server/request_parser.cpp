#include "server/request_parser.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/text_codec.h"
#include "io/image_probe.h"
#include "pipeline/image_ops.h"

namespace flux2::server {

using nlohmann::json;

namespace {

constexpr int kMaxJsonDepth = 32;

// A request's fields, from a JSON object or from form text. Form values arrive as strings and must parse as the
// field's type in full; JSON values must have the type itself. null counts as absent (clients send it for unset
// optional fields).
class Fields {
public:
    Fields(const json& obj, bool from_form) : obj_(obj), form_(from_form) {}

    const json* get(const std::string& key) const {
        auto it = obj_.find(key);
        return it == obj_.end() || it->is_null() ? nullptr : &*it;
    }

    std::optional<std::string> text(const std::string& key, int64_t max_bytes) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (!v->is_string()) throw bad_request(key, "invalid_type", "'", key, "' must be a string");
        const std::string& s = v->get_ref<const std::string&>();
        if (static_cast<int64_t>(s.size()) > max_bytes)
            throw bad_request(key, "invalid_value", "'", key, "' is ", s.size(), " bytes; the limit is ", max_bytes);
        if (!is_valid_utf8(s)) throw bad_request(key, "invalid_value", "'", key, "' is not valid UTF-8");
        if (s.find('\0') != std::string::npos)
            throw bad_request(key, "invalid_value", "'", key, "' contains a NUL character");
        return s;
    }

    std::optional<int64_t> integer(const std::string& key, int64_t lo, int64_t hi) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        std::optional<int64_t> n = as_integer(*v);
        if (!n) throw bad_request(key, "invalid_type", "'", key, "' must be an integer");
        if (*n < lo || *n > hi)
            throw bad_request(key, "invalid_value", "'", key, "' must be between ", lo, " and ", hi, ", got ", *n);
        return n;
    }

    std::optional<double> number(const std::string& key, double lo, double hi) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        double d;
        if (v->is_number())
            d = v->get<double>();
        else if (form_ && v->is_string()) {
            const std::string& s = v->get_ref<const std::string&>();
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), d);
            if (ec != std::errc() || end != s.data() + s.size() || s.empty())
                throw bad_request(key, "invalid_type", "'", key, "' must be a number");
        } else {
            throw bad_request(key, "invalid_type", "'", key, "' must be a number");
        }
        if (!std::isfinite(d) || d < lo || d > hi)
            throw bad_request(key, "invalid_value", "'", key, "' must be between ", lo, " and ", hi);
        return d;
    }

    std::optional<bool> boolean(const std::string& key) const {
        const json* v = get(key);
        if (!v) return std::nullopt;
        if (v->is_boolean()) return v->get<bool>();
        if (form_ && v->is_string()) {
            const std::string& s = v->get_ref<const std::string&>();
            if (s == "true" || s == "1") return true;
            if (s == "false" || s == "0") return false;
        }
        throw bad_request(key, "invalid_type", "'", key, "' must be true or false");
    }

    // A seed: 0 .. 2^64 - 1.
    static std::optional<uint64_t> as_seed(const json& v, bool form) {
        if (v.is_number_unsigned()) return v.get<uint64_t>();
        if (v.is_number_integer())
            return v.get<int64_t>() >= 0 ? std::optional<uint64_t>(v.get<int64_t>()) : std::nullopt;
        if (form && v.is_string()) {
            const std::string& s = v.get_ref<const std::string&>();
            uint64_t n;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
            if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return n;
        }
        return std::nullopt;
    }

    bool form() const { return form_; }

private:
    std::optional<int64_t> as_integer(const json& v) const {
        if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
        if (v.is_number_unsigned()) {
            const uint64_t u = v.get<uint64_t>();
            return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                                  : static_cast<int64_t>(u);
        }
        if (v.is_number_float()) {  // 4.0 is an integer; 4.5, 1e300 and NaN are not
            const double d = v.get<double>();
            if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15) return static_cast<int64_t>(d);
            return std::nullopt;
        }
        if (form_ && v.is_string()) {
            const std::string& s = v.get_ref<const std::string&>();
            int64_t n;
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
            if (ec == std::errc() && end == s.data() + s.size() && !s.empty()) return n;
            if (ec == std::errc::result_out_of_range) return std::numeric_limits<int64_t>::max();
        }
        return std::nullopt;
    }

    const json& obj_;
    bool form_;
};

// "WxH" or "auto" (0 x 0). Each side at most kMaxSide, as the width and height fields, so that their product cannot
// overflow (a fuzzed "8446744718661184464x48" wrapped past the pixel limit to a negative width).
constexpr int64_t kMaxSide = 1 << 20;

std::pair<int64_t, int64_t> parse_size(const std::string& s) {
    if (s == "auto") return {0, 0};
    const size_t x = s.find('x');
    auto number = [&](std::string_view part) -> int64_t {
        int64_t n = -1;
        auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), n);
        if (ec != std::errc() || end != part.data() + part.size() || part.empty() || n <= 0)
            throw bad_request("size", "invalid_value",
                              "'size' must be \"WIDTHxHEIGHT\" (e.g. \"1024x768\") or \"auto\", got \"",
                              s.substr(0, 64), "\"");
        if (n > kMaxSide)
            throw bad_size("size", "'size' sides are at most ", kMaxSide, " pixels, got \"", s.substr(0, 64), "\"");
        return n;
    };
    if (x == std::string::npos) number("");
    return {number(std::string_view(s).substr(0, x)), number(std::string_view(s).substr(x + 1))};
}

void check_side(const std::string& param, int64_t side) {
    if (side % 16 != 0 || side < 16) throw bad_size(param, "image sides must be positive multiples of 16, got ", side);
}

// Decoded reference images, and the size the pipeline gives the first (the output size when none is asked for).
struct References {
    std::vector<Image> images;
    int64_t first_width = 0, first_height = 0;
};

// Decodes one uploaded reference image after checking its declared size against the budget, and appends it.
void add_reference(References& refs, const uint8_t* data, size_t size, const std::string& param,
                   const ServerLimits& limits) {
    const std::optional<ImageSize> dims = probe_image_size(data, size);
    if (!dims)
        throw bad_request(param, "invalid_image", "'", param,
                          "' is not a PNG or JPEG image whose header declares a valid size");
    if (dims->width * dims->height > limits.max_reference_pixels)
        throw bad_request(param, "invalid_image", "'", param, "' is ", dims->width, "x", dims->height,
                          "; reference images are at most ", limits.max_reference_pixels, " pixels");
    try {
        Image img = decode_image(data, size, param);
        // Its checks (sides >= 64, aspect <= 8) fail here, not in the worker.
        const Tensor processed = preprocess_reference_image(img);
        if (refs.images.empty()) refs.first_width = processed.dim(3), refs.first_height = processed.dim(2);
        refs.images.push_back(std::move(img));
    } catch (const Error& e) {
        throw bad_request(param, "invalid_image", e.what());
    }
}

void add_data_url(References& refs, const std::string& url, const std::string& param, const ServerLimits& limits) {
    if (url.starts_with("http://") || url.starts_with("https://"))
        throw bad_request(param, "invalid_value",
                          "remote image URLs are not fetched; send the image as a data URL "
                          "(data:image/png;base64,...) or use multipart upload");
    const size_t comma = url.find(',');
    if (!url.starts_with("data:") || comma == std::string::npos ||
        std::string_view(url).substr(0, comma).find(";base64") == std::string_view::npos)
        throw bad_request(param, "invalid_value", "'", param,
                          "' must be a base64 data URL (data:image/png;base64,...)");
    std::optional<std::vector<uint8_t>> bytes = base64_decode(std::string_view(url).substr(comma + 1));
    if (!bytes) throw bad_request(param, "invalid_value", "'", param, "' holds invalid base64");
    add_reference(refs, bytes->data(), bytes->size(), param, limits);
}

References json_images(const Fields& f, const ServerLimits& limits) {
    const json* images = f.get("images");
    if (!images)
        throw bad_request("images", "missing_field", "an edit needs 'images': [{\"image_url\": \"data:...\"}]");
    if (!images->is_array() || images->empty())
        throw bad_request("images", "invalid_type", "'images' must be a non-empty array of {\"image_url\": ...}");
    if (static_cast<int64_t>(images->size()) > limits.max_images)
        throw bad_request("images", "invalid_value", "at most ", limits.max_images, " reference images, got ",
                          images->size());
    References out;
    for (size_t i = 0; i < images->size(); ++i) {
        const std::string param = str("images[", i, "].image_url");
        const json& item = (*images)[i];
        const json* url = item.is_object() && item.contains("image_url") ? &item["image_url"] : nullptr;
        if (url && url->is_object() && url->contains("url")) url = &(*url)["url"];  // {"image_url": {"url": ...}}
        if (!url || !url->is_string())
            throw bad_request(param, "invalid_type", "'images[", i, "]' must be {\"image_url\": \"data:...\"}");
        add_data_url(out, url->get<std::string>(), param, limits);
    }
    return out;
}

std::vector<uint64_t> parse_seeds(const Fields& f, int n) {
    const json* v = f.get("seed");
    if (!v) return {};
    const std::string must = "'seed' must be an integer 0 .. 2^64-1, or a list with one such seed per image";
    if (v->is_array()) {
        if (static_cast<int>(v->size()) != n)
            throw bad_request("seed", "invalid_value", "'seed' lists ", v->size(), " seeds for n = ", n, " images");
        std::vector<uint64_t> seeds;
        for (const json& s : *v) {
            auto seed = Fields::as_seed(s, false);
            if (!seed) throw bad_request("seed", "invalid_value", must);
            seeds.push_back(*seed);
        }
        return seeds;
    }
    auto seed = Fields::as_seed(*v, f.form());
    if (!seed) throw bad_request("seed", v->is_number() || f.form() ? "invalid_value" : "invalid_type", must);
    std::vector<uint64_t> seeds;
    for (int i = 0; i < n; ++i) seeds.push_back(*seed + static_cast<uint64_t>(i));
    return seeds;
}

ImageRequest parse_fields(RequestKind kind, const Fields& f, References references, const ServerLimits& limits,
                          const ModelFacts& model) {
    ImageRequest r;
    r.kind = kind;
    EngineRequest& e = r.engine;
    std::optional<std::string> prompt = f.text("prompt", limits.max_prompt_bytes);
    if (!prompt) throw bad_request("prompt", "missing_field", "'prompt' is required");
    if (prompt->empty()) throw bad_request("prompt", "invalid_value", "'prompt' is empty");
    e.prompt = *prompt;
    r.model = f.text("model", 256).value_or("");
    r.user = f.text("user", 256).value_or("");
    e.num_images = static_cast<int>(f.integer("n", 1, limits.max_n).value_or(1));

    if (auto fmt = f.text("response_format", 32)) {
        if (*fmt != "b64_json" && *fmt != "url")
            throw bad_request("response_format", "invalid_value", "'response_format' must be \"b64_json\" or \"url\"");
        r.response_url = *fmt == "url";
    }
    if (auto fmt = f.text("output_format", 32)) {
        if (*fmt != "png" && *fmt != "jpeg" && *fmt != "webp")
            throw bad_request("output_format", "invalid_value",
                              "'output_format' must be \"png\", \"jpeg\" or \"webp\"");
        r.output_format = parse_image_format(*fmt);
    }
    r.output_compression = static_cast<int>(f.integer("output_compression", 0, 100).value_or(100));
    r.stream = f.boolean("stream").value_or(false);

    // Size: "size" first, then width/height (sglang's extensions) override its sides.
    auto [w, h] = parse_size(f.text("size", 64).value_or("auto"));
    std::string w_param = "size", h_param = "size";
    if (auto v = f.integer("width", 1, kMaxSide)) w = *v, w_param = "width";
    if (auto v = f.integer("height", 1, kMaxSide)) h = *v, h_param = "height";
    if ((w == 0) != (h == 0))
        throw bad_size(w == 0 ? (h_param == "height" ? "width" : "size") : (w_param == "width" ? "height" : "size"),
                       "give both width and height, or neither");
    if (w == 0 && references.images.empty()) w = model.default_width, h = model.default_height;
    if (w == 0) w = references.first_width, h = references.first_height;  // the pipeline's choice: checked here
    check_side(w_param, w);
    check_side(h_param, h);
    if (w * h > limits.max_pixels)
        throw bad_size(w_param == "size" ? "size" : "width", w, "x", h, " is ", w * h,
                       " pixels; this server allows at most ", limits.max_pixels, " per image (--max-pixels)");
    e.width = static_cast<int>(w);
    e.height = static_cast<int>(h);

    e.num_steps = static_cast<int>(f.integer("num_inference_steps", 1, limits.max_steps).value_or(0));
    if (auto g = f.number("guidance_scale", 0.0, 100.0)) e.guidance_scale = static_cast<float>(*g);
    if (auto g = f.number("true_cfg_scale", 0.0, 100.0)) {
        if (!model.true_cfg)
            throw bad_request("true_cfg_scale", "invalid_value",
                              "this model has no true CFG (only klein base does); use guidance_scale");
        e.guidance_scale = static_cast<float>(*g);
    }
    if (auto neg = f.text("negative_prompt", limits.max_prompt_bytes); neg && !neg->empty()) {
        if (!model.true_cfg)
            throw bad_request("negative_prompt", "invalid_value",
                              "this model does not use a negative prompt (only klein base with true CFG does)");
        e.negative_prompt = *neg;
    }
    e.max_sequence_length =
        static_cast<int>(f.integer("max_sequence_length", 1, limits.max_sequence_length).value_or(512));
    e.seeds = parse_seeds(f, e.num_images);
    e.reference_images = std::move(references.images);
    if (const json* v = f.get("lora")) {
        // A form sends the list as JSON text.
        if (f.form() && v->is_string()) {
            const json parsed = json::parse(v->get<std::string>(), nullptr, false);
            if (parsed.is_discarded()) throw bad_request("lora", "invalid_json", "the form field 'lora' is not JSON");
            r.loras = parse_lora_list(parsed, limits, "lora");
        } else {
            r.loras = parse_lora_list(*v, limits, "lora");
        }
    }
    return r;
}

}  // namespace

std::vector<LoraChoice> parse_lora_list(const json& value, const ServerLimits& limits, const std::string& param) {
    const json list = value.is_object() ? json::array({value}) : value;
    if (!list.is_array())
        throw bad_request(param, "invalid_type", "'", param,
                          "' must be a list of {\"name\" or \"path\", \"strength\"}");
    if (static_cast<int>(list.size()) > limits.max_loras)
        throw bad_request(param, "invalid_value", "at most ", limits.max_loras, " LoRAs per request, got ",
                          list.size());
    std::vector<LoraChoice> out;
    for (size_t i = 0; i < list.size(); ++i) {
        const std::string at = str(param, "[", i, "]");
        if (!list[i].is_object()) throw bad_request(at, "invalid_type", "'", at, "' must be an object");
        const Fields f(list[i], false);
        LoraChoice c;
        c.name = f.text("name", 256).value_or("");
        c.path = f.text("path", 4096).value_or("");
        if (c.name.empty() == c.path.empty())
            throw bad_request(at, "invalid_value", "'", at,
                              "' needs exactly one of \"name\" (a loaded adapter) or \"path\"");
        try {
            c.strength = static_cast<float>(f.number("strength", -10.0, 10.0).value_or(1.0));
        } catch (ApiError& e) {
            e.param = at + ".strength";
            throw;
        }
        out.push_back(std::move(c));
    }
    return out;
}

int json_nesting_depth(std::string_view body) {
    int depth = 0, max_depth = 0;
    bool in_string = false, escaped = false;
    for (char c : body) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            max_depth = std::max(max_depth, ++depth);
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return max_depth;
}

json parse_json_object(std::string_view body, int max_depth) {
    // nlohmann's parser is iterative, but recursion elsewhere (destruction, dump) is not: bound the depth first.
    if (json_nesting_depth(body) > max_depth)
        throw bad_request("", "invalid_json", "the JSON body nests deeper than ", max_depth, " levels");
    json obj;
    try {
        obj = json::parse(body);
    } catch (const json::exception& e) {  // parse errors, and numbers beyond a double (1e999: out_of_range)
        throw bad_request("", "invalid_json", "the body is not valid JSON: ", e.what());
    }
    if (!obj.is_object()) throw bad_request("", "invalid_json", "the body must be a JSON object");
    return obj;
}

ImageRequest parse_image_json(RequestKind kind, std::string_view body, const ServerLimits& limits,
                              const ModelFacts& model) {
    const json obj = parse_json_object(body, kMaxJsonDepth);
    const Fields f(obj, false);
    References refs;
    if (kind == RequestKind::edit) refs = json_images(f, limits);
    return parse_fields(kind, f, std::move(refs), limits, model);
}

ImageRequest parse_edit_form(const FormData& form, const ServerLimits& limits, const ModelFacts& model) {
    json obj = json::object();
    for (const auto& [key, value] : form.fields) {
        if (obj.contains(key)) throw bad_request(key, "invalid_value", "the form field '", key, "' is given twice");
        obj[key] = value;
    }
    References refs;
    int index = 0;
    for (const FormData::File& file : form.files) {
        if (file.field != "image" && file.field != "image[]") {
            if (file.field == "mask") throw bad_request("mask", "invalid_value", "masks are not supported");
            continue;
        }
        if (static_cast<int>(refs.images.size()) >= limits.max_images)
            throw bad_request(file.field, "invalid_value", "at most ", limits.max_images, " reference images");
        const std::string param = file.field == "image" ? "image" : str("image[", index, "]");
        add_reference(refs, reinterpret_cast<const uint8_t*>(file.content.data()), file.content.size(), param, limits);
        ++index;
    }
    if (refs.images.empty())
        throw bad_request("image", "missing_field", "an edit needs at least one 'image' (or 'image[]') file");
    return parse_fields(RequestKind::edit, Fields(obj, true), std::move(refs), limits, model);
}

}  // namespace flux2::server
