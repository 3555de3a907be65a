#include "server/http_server.h"

#include <charconv>
#include <chrono>

#include "core/error.h"
#include "core/log.h"
#include "server/http_util.h"
#include "server/routes.h"

namespace flux2::server {

namespace {

thread_local std::chrono::steady_clock::time_point request_start{};

bool public_path(const std::string& path) { return path == "/" || path == "/health" || path == "/health/live"; }

bool same_key(const std::string& a, const std::string& b) {
    // Compared in time independent of where the strings first differ.
    unsigned diff = a.size() != b.size();
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned>(a[i] ^ (i < b.size() ? b[i] : 0));
    return diff == 0;
}

// Errors httplib produces itself (malformed request line, oversized body, unknown route) get OpenAI's body too.
ApiError error_for_status(int status, const httplib::Request& req) {
    switch (status) {
        case 400:
            return bad_request("", "invalid_request", "malformed HTTP request");
        case 404:
            return not_found("not_found", "no route " + req.method + " " + req.path.substr(0, 200));
        case 413:
            return ApiError(413, "invalid_request_error", "payload_too_large", "", "the request body is too large");
        case 414:
            return ApiError(414, "invalid_request_error", "uri_too_long", "", "the request URI is too long");
        default:
            return ApiError(status, status >= 500 ? "server_error" : "invalid_request_error", "http_error", "",
                            "HTTP error " + std::to_string(status));
    }
}

}  // namespace

struct HttpServer::Impl {
    ImageService& service;
    HttpOptions options;
    httplib::Server http;
    int port = -1;
};

HttpServer::HttpServer(ImageService& service, HttpOptions options)
    : impl_(new Impl{service, std::move(options), {}, -1}) {
    Impl& m = *impl_;
    httplib::Server& http = m.http;
    const int threads = m.options.threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    const int64_t max_body = m.service.options().limits.max_body_bytes;
    http.set_payload_max_length(static_cast<size_t>(max_body));
    http.set_read_timeout(10, 0);
    http.set_write_timeout(10, 0);
    http.set_keep_alive_timeout(5);

    http.set_pre_routing_handler([&m, max_body](const httplib::Request& req, httplib::Response& res) {
        request_start = std::chrono::steady_clock::now();
        request_note() = {};
        if (!m.options.api_key.empty() && !public_path(req.path)) {
            const std::string auth = req.get_header_value("Authorization");
            if (!auth.starts_with("Bearer ") || !same_key(auth.substr(7), m.options.api_key)) {
                write_error(res, ApiError(401, "authentication_error", "invalid_api_key", "",
                                          auth.empty() ? "missing API key: send 'Authorization: Bearer <key>'"
                                                       : "invalid API key"));
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        // Refuse a declared oversized body before reading it; the connection closes, as its bytes stay unread.
        if (req.has_header("Content-Length")) {
            const std::string len = req.get_header_value("Content-Length");
            int64_t n = 0;
            const auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
            if (ec == std::errc::result_out_of_range || (ec == std::errc() && n > max_body)) {
                res.set_header("Connection", "close");
                write_error(res, ApiError(413, "invalid_request_error", "payload_too_large", "",
                                          str("the request body is ", len, " bytes; this server accepts at most ",
                                              max_body, " (--max-body-mb)")));
                return httplib::Server::HandlerResponse::Handled;
            }
        }
        const std::string allowed = allowed_method(req.path);
        const std::string method = req.method == "HEAD" ? "GET" : req.method;
        if (!allowed.empty() && method != allowed) {
            res.set_header("Allow", allowed);
            write_error(res,
                        ApiError(405, "invalid_request_error", "method_not_allowed", "",
                                 req.method.substr(0, 16) + " is not allowed on " + req.path + "; use " + allowed));
            return httplib::Server::HandlerResponse::Handled;
        }
        return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler(
        httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty() || res.status == 499) return httplib::Server::HandlerResponse::Unhandled;
            write_error(res, error_for_status(res.status, req));
            return httplib::Server::HandlerResponse::Handled;
        }));
    http.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown";
        try {
            std::rethrow_exception(ep);
        } catch (const ApiError& e) {
            write_error(res, e);
            return;
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        log_error("internal error on ", req.method, " ", req.path, ": ", what);
        write_error(res, ApiError(500, "server_error", "internal_error", "", "internal server error: " + what));
    });
    http.set_logger([&m](const httplib::Request& req, const httplib::Response& res) {
        const double seconds =
            request_start == std::chrono::steady_clock::time_point{}
                ? 0.0
                : std::chrono::duration<double>(std::chrono::steady_clock::now() - request_start).count();
        request_start = {};
        const std::string endpoint = endpoint_label(req.path);
        m.service.metrics().count_request(endpoint, res.status, seconds);
        const RequestNote& note = request_note();
        if (endpoint == "/health" || endpoint == "/health/live" || endpoint == "/metrics") {
            log_debug(req.method, " ", req.path, " ", res.status);
            return;
        }
        log_info("request ", note.id.empty() ? "-" : note.id, " ", req.method, " ", endpoint, " ", res.status, " ",
                 seconds, " s", note.queue_seconds >= 0 ? str(", queue ", note.queue_seconds, " s") : "",
                 note.compute_seconds >= 0 ? str(", compute ", note.compute_seconds, " s") : "",
                 note.size.empty() ? "" : ", images " + note.size, " (", req.remote_addr, ")");
    });

    register_image_routes(http, m.service);
    register_info_routes(http, m.service);
    register_lora_routes(http, m.service);
}

HttpServer::~HttpServer() = default;

void HttpServer::bind() {
    Impl& m = *impl_;
    if (m.options.port == 0)
        m.port = m.http.bind_to_any_port(m.options.host);
    else
        m.port = m.http.bind_to_port(m.options.host, m.options.port) ? m.options.port : -1;
    check(m.port > 0, "cannot listen on ", m.options.host, ":", m.options.port,
          " (address in use, or not an address of this machine); choose another --host/--port");
}

int HttpServer::port() const { return impl_->port; }

void HttpServer::serve() { impl_->http.listen_after_bind(); }

void HttpServer::stop() { impl_->http.stop(); }

}  // namespace flux2::server
