#include "io/json.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace flux2 {

namespace {

using nlohmann::json;

// Builds the DOM from SAX events, refusing duplicate keys and deep nesting. nlohmann's own callback parser could
// report keys too, but it rescans the parent object after every child object ends, which is quadratic in the
// number of tensors of a header.
class StrictDomBuilder {
public:
    explicit StrictDomBuilder(size_t max_depth) : max_depth_(max_depth) {}

    bool null() { return add(json(nullptr)); }
    bool boolean(bool v) { return add(json(v)); }
    bool number_integer(json::number_integer_t v) { return add(json(v)); }
    bool number_unsigned(json::number_unsigned_t v) { return add(json(v)); }
    bool number_float(json::number_float_t v, const json::string_t&) { return add(json(v)); }
    bool string(json::string_t& v) { return add(json(std::move(v))); }
    bool binary(json::binary_t& v) { return add(json(std::move(v))); }
    bool start_object(size_t) { return open(json::object()); }
    bool start_array(size_t) { return open(json::array()); }
    bool end_object() { return close(); }
    bool end_array() { return close(); }
    bool key(json::string_t& k) {
        if (open_.back()->contains(k)) {
            error_ = str("JSON key \"", k, "\" appears twice in the same object",
                         open_.size() == 1 ? " (top level)" : "", "; a parser would silently keep only the last one");
            return false;
        }
        key_ = std::move(k);
        return true;
    }
    bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
        error_ = str("invalid JSON: ", e.what());
        return false;
    }

    json& result() { return root_; }
    const std::string& error() const { return error_; }

private:
    // Containers on open_ are never moved while open: values are only appended to the innermost one, and a
    // std::map keeps its elements in place.
    json* insert(json&& v) {
        if (open_.empty()) {
            root_ = std::move(v);
            return &root_;
        }
        json& parent = *open_.back();
        if (parent.is_array()) {
            parent.push_back(std::move(v));
            return &parent.back();
        }
        return &(parent[key_] = std::move(v));
    }
    bool add(json&& v) {
        insert(std::move(v));
        return true;
    }
    bool open(json&& container) {
        if (open_.size() >= max_depth_) {
            error_ = str("JSON nested deeper than ", max_depth_, " levels");
            return false;
        }
        open_.push_back(insert(std::move(container)));
        return true;
    }
    bool close() {
        open_.pop_back();
        return true;
    }

    size_t max_depth_;
    json root_;
    std::vector<json*> open_;
    std::string key_;
    std::string error_;
};

}  // namespace

json parse_json_strict(const char* text, size_t len, const std::string& origin, size_t max_depth) {
    StrictDomBuilder builder(max_depth);
    const bool ok = json::sax_parse(text, text + len, &builder);
    if (!ok) fail(origin, ": ", builder.error().empty() ? "invalid JSON" : builder.error());
    return std::move(builder.result());
}

json read_json_file(const std::string& path) {
    std::error_code ec;
    check(!std::filesystem::is_directory(path, ec), path, ": is a folder, expected a JSON file");
    std::ifstream in(path, std::ios::binary);
    check(in.good(), path, ": cannot open JSON file");
    std::ostringstream buffer;
    buffer << in.rdbuf();
    check(!in.bad(), path, ": read error");
    const std::string text = buffer.str();
    return parse_json_strict(text.data(), text.size(), path);
}

}  // namespace flux2
