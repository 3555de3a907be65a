// LoRA routes: what is loaded and active, and sglang's admin calls to load adapters and choose the set that requests
// without a `lora` field run with. Per-request choices travel in the request's `lora` field (request_parser.cpp).
#include "core/text_codec.h"
#include "models/lora/lora_registry.h"
#include "server/http_util.h"
#include "server/request_parser.h"
#include "server/routes.h"

namespace flux2::server {

using nlohmann::json;

namespace {
// A string or a list of strings (sglang takes both for lora_nickname / lora_path).
std::vector<std::string> strings(const json& j, const std::string& key) {
    if (!j.contains(key) || j[key].is_null()) return {};
    const json list = j[key].is_array() ? j[key] : json::array({j[key]});
    std::vector<std::string> out;
    for (const json& v : list) {
        if (!v.is_string() || v.get_ref<const std::string&>().size() > 4096 || !is_valid_utf8(v.get<std::string>()))
            throw bad_request(key, "invalid_type", "'", key, "' must be a string or a list of strings");
        out.push_back(v.get<std::string>());
    }
    return out;
}

// POST /v1/set_lora {lora_nickname, lora_path?, strength?, target?}: loads the paths (relative to --lora-dir) under
// the nicknames and makes them the default set.
void set_lora(ImageService& service, const httplib::Request& req, httplib::Response& res) {
    const json j = parse_json_object(req.body, 8);  // sglang's admin bodies are flat
    const std::vector<std::string> names = strings(j, "lora_nickname"), paths = strings(j, "lora_path");
    if (names.empty()) throw bad_request("lora_nickname", "missing_field", "'lora_nickname' is required");
    if (!paths.empty() && paths.size() != names.size())
        throw bad_request("lora_path", "invalid_value", "give one lora_path per lora_nickname");
    if (j.contains("target") && j["target"] != "all" && j["target"] != "transformer")
        throw bad_request("target", "invalid_value", "LoRAs apply to the transformer ('all' or 'transformer')");
    std::vector<float> strengths(names.size(), 1.0f);
    if (j.contains("strength") && !j["strength"].is_null()) {
        const json list = j["strength"].is_array() ? j["strength"] : json::array({j["strength"]});
        if (list.size() != names.size() && list.size() != 1)
            throw bad_request("strength", "invalid_value", "give one strength, or one per lora_nickname");
        for (size_t i = 0; i < names.size(); ++i) {
            const json& v = list[list.size() == 1 ? 0 : i];
            if (!v.is_number() || !(std::abs(v.get<double>()) <= 10))
                throw bad_request("strength", "invalid_value", "strengths are numbers between -10 and 10");
            strengths[i] = v.get<float>();
        }
    }
    std::vector<std::pair<std::string, float>> active;
    for (size_t i = 0; i < names.size(); ++i) {
        if (!paths.empty()) service.load_lora(paths[i], "lora_path", names[i]);
        active.emplace_back(names[i], strengths[i]);
    }
    service.set_default_loras(active);
    write_json(res, 200, {{"status", "ok"}, {"message", str("active LoRAs: ", names.size())}});
}

json sglang_listing(const ImageService& service) {
    const json listing = service.lora_listing();
    json loaded = json::array(), active = json::array();
    for (const json& item : listing["data"]) {
        loaded.push_back({{"nickname", item["name"]}, {"path", item["path"]}});
        if (item["active"])
            active.push_back({{"nickname", item["name"]},
                              {"path", item["path"]},
                              {"merged", false},
                              {"strength", item["strength"]}});
    }
    return {{"loaded_adapters", loaded}, {"active", {{"transformer", active}}}};
}
}  // namespace

void register_lora_routes(httplib::Server& http, ImageService& service) {
    http.Get("/v1/loras", [&service](const httplib::Request&, httplib::Response& res) {
        if (!answer_if_loading(service, res)) write_json(res, 200, service.lora_listing());
    });
    http.Get("/v1/list_loras", [&service](const httplib::Request&, httplib::Response& res) {
        if (!answer_if_loading(service, res)) write_json(res, 200, sglang_listing(service));
    });
    http.Post("/v1/set_lora", [&service](const httplib::Request& req, httplib::Response& res) {
        if (answer_if_loading(service, res)) return;
        try {
            set_lora(service, req, res);
        } catch (const ApiError& e) {
            write_error(res, e);
        }
    });
    http.Post("/v1/unmerge_lora_weights", [&service](const httplib::Request&, httplib::Response& res) {
        if (answer_if_loading(service, res)) return;
        service.set_default_loras({});
        write_json(res, 200, {{"status", "ok"}, {"message", "no LoRAs active by default"}});
    });
}

}  // namespace flux2::server
