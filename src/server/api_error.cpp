#include "server/api_error.h"

namespace flux2::server {

ApiError not_found(const std::string& code, const std::string& message) {
    return ApiError(404, "not_found_error", code, "", message);
}

ApiError unavailable(const std::string& code, const std::string& message) {
    const bool loading = code == "model_loading";
    ApiError e(503, "server_error", code, "",
               !message.empty() ? message
               : loading        ? "the model is still loading; retry when /health says ok"
                                : "the server is shutting down");
    e.retry_after_seconds = loading ? 10 : 5;
    return e;
}

nlohmann::json error_body(const ApiError& e) {
    nlohmann::json err = {{"message", e.what()}, {"type", e.type}, {"code", e.code}};
    err["param"] = e.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.param);
    return {{"error", err}};
}

}  // namespace flux2::server
