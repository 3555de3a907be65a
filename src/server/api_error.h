#pragma once
// An error answered to an API client in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP
// status. Request parsing and the job queue throw it; the HTTP layer writes it. Anything else that escapes a handler
// is a server fault (500) and is logged.
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "core/error.h"

namespace flux2::server {

struct ApiError : std::runtime_error {
    ApiError(int status, std::string type, std::string code, std::string param, const std::string& message)
        : std::runtime_error(message),
          status(status),
          type(std::move(type)),
          code(std::move(code)),
          param(std::move(param)) {}
    int status;
    std::string type;   // invalid_request_error, authentication_error, not_found_error, rate_limit_error, server_error
    std::string code;   // machine-readable: invalid_json, missing_field, invalid_type, invalid_value, invalid_size, ...
    std::string param;  // the request field at fault ("n", "images[1].image_url"); empty when none
    int retry_after_seconds = 0;  // 429 and 503: the Retry-After header
};

// The usual kinds, message built like flux2::str.
template <typename... Args>
ApiError bad_request(const std::string& param, const std::string& code, const Args&... message) {
    return ApiError(400, "invalid_request_error", code, param, str(message...));
}
template <typename... Args>
ApiError bad_size(const std::string& param, const Args&... message) {
    return ApiError(422, "invalid_request_error", "invalid_size", param, str(message...));
}
ApiError not_found(const std::string& code, const std::string& message);
// 503 while the models load ("model_loading", retry in 10 s) or after shutdown began ("shutting_down", retry in 5 s);
// an empty message says which.
ApiError unavailable(const std::string& code, const std::string& message = "");

nlohmann::json error_body(const ApiError& e);

}  // namespace flux2::server
