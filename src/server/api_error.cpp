#include "server/api_error.h"

namespace flux2::server {

ApiError not_found(const std::string& code, const std::string& message) {
    return ApiError(404, "not_found_error", code, "", message);
}

nlohmann::json error_body(const ApiError& e) {
    nlohmann::json err = {{"message", e.what()}, {"type", e.type}, {"code", e.code}};
    err["param"] = e.param.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.param);
    return {{"error", err}};
}

}  // namespace flux2::server
