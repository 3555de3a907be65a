// Discovery and operations routes: the model list, health, Prometheus metrics and the page for people.
#include <chrono>

#include "server/http_util.h"
#include "server/routes.h"
#include "server/web_page.h"

namespace flux2::server {

using nlohmann::json;

namespace {
json model_json(const ImageService& service) {
    const ModelFacts& m = service.model();
    return {
        {"id", m.id},
        {"object", "model"},
        {"created", std::chrono::duration_cast<std::chrono::seconds>(service.ready_since().time_since_epoch()).count()},
        {"owned_by", "flux2.cpp"},
        {"true_cfg", m.true_cfg},
        {"default_size", std::to_string(m.default_width) + "x" + std::to_string(m.default_height)}};
}

}  // namespace

bool answer_if_loading(const ImageService& service, httplib::Response& res) {
    if (service.health() != Health::loading) return false;
    write_error(res, unavailable("model_loading"));
    return true;
}

void register_info_routes(httplib::Server& http, ImageService& service) {
    http.Get("/health", [&service](const httplib::Request&, httplib::Response& res) {
        const Health h = service.health();
        write_json(res, h == Health::ok ? 200 : 503, {{"status", health_name(h)}});
    });
    // Liveness: the process answers, whether or not the models are loaded yet.
    http.Get("/health/live", [](const httplib::Request&, httplib::Response& res) {
        write_json(res, 200, {{"status", "alive"}});
    });
    http.Get("/metrics", [&service](const httplib::Request&, httplib::Response& res) {
        res.status = 200;
        res.set_content(service.metrics().render(service.live_gauges()), "text/plain; version=0.0.4; charset=utf-8");
    });
    http.Get("/v1/models", [&service](const httplib::Request&, httplib::Response& res) {
        if (answer_if_loading(service, res)) return;
        write_json(res, 200, {{"object", "list"}, {"data", json::array({model_json(service)})}});
    });
    http.Get("/v1/models/([^/]+)", [&service](const httplib::Request& req, httplib::Response& res) {
        if (answer_if_loading(service, res)) return;
        const std::string id = req.matches[1];
        if (id != service.model().id) {
            write_error(res, not_found("model_not_found", "the model '" + id.substr(0, 200) +
                                                              "' does not exist; this server serves '" +
                                                              service.model().id + "'"));
            return;
        }
        write_json(res, 200, model_json(service));
    });
    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
        res.status = 200;
        const std::string_view page = web_page_html();
        res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
    });
}

}  // namespace flux2::server
