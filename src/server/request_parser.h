#pragma once
// JSON and multipart bodies -> a validated ImageRequest, or an ApiError naming the field (`param`). Pure functions:
// no sockets, no model; tested directly. One reader per field kind is shared by generations, edits and their form
// variant, so every route checks a field the same way.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "server/api_error.h"
#include "server/image_request.h"

namespace flux2::server {

// A multipart/form-data body as the HTTP layer hands it over: text fields and uploaded files by field name, in order.
struct FormData {
    std::multimap<std::string, std::string> fields;
    struct File {
        std::string field, filename, content;
    };
    std::vector<File> files;
};

// POST /v1/images/generations, and /v1/images/edits with a JSON body (images[].image_url data URLs).
ImageRequest parse_image_json(RequestKind kind, std::string_view body, const ServerLimits& limits,
                              const ModelFacts& model);
// POST /v1/images/edits as multipart: `image` or repeated `image[]` files plus the same fields as text.
ImageRequest parse_edit_form(const FormData& form, const ServerLimits& limits, const ModelFacts& model);

// A `lora` value: [{"name" | "path", "strength"}, ...] (or one such object). `param` names the field in errors.
std::vector<LoraChoice> parse_lora_list(const nlohmann::json& value, const ServerLimits& limits,
                                        const std::string& param);

// A request body that must be one JSON object nesting at most `max_depth` levels; 400 invalid_json otherwise.
nlohmann::json parse_json_object(std::string_view body, int max_depth);

// Nesting depth of JSON arrays/objects in `body`, counted outside strings (bounded before parsing).
int json_nesting_depth(std::string_view body);

}  // namespace flux2::server
