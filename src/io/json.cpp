#include "io/json.h"

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

#include "core/error.h"

namespace flux2 {

using nlohmann::json;

json parse_json_strict(const char* text, size_t len, const std::string& origin) {
    // One key set per open object; the parser callback sees keys in document order.
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    size_t duplicate_depth = 0;
    auto on_event = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
        switch (event) {
            case json::parse_event_t::object_start:
                open_objects.emplace_back();
                break;
            case json::parse_event_t::key:
                if (!open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
                    duplicate = parsed.get<std::string>();
                    duplicate_depth = open_objects.size();
                }
                break;
            case json::parse_event_t::object_end:
                open_objects.pop_back();
                break;
            default:
                break;
        }
        return true;
    };
    json result;
    try {
        result = json::parse(text, text + len, on_event);
    } catch (const json::exception& e) {
        fail(origin, ": invalid JSON: ", e.what());
    }
    check(duplicate.empty(), origin, ": JSON key \"", duplicate, "\" appears twice in the same object",
          duplicate_depth == 1 ? " (top level)" : "", "; a parser would silently keep only the last one");
    return result;
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
