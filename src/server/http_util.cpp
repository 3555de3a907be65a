#include "server/http_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <charconv>
#include <regex>
#include <string_view>
#include <utility>
#include <vector>

namespace flux2::server {

void write_json(httplib::Response& res, int status, const nlohmann::json& body) {
    res.status = status;
    // Replace: an invalid UTF-8 byte can only come from our own messages quoting input; never throw while answering.
    res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
}

void write_error(httplib::Response& res, const ApiError& e) {
    if (e.retry_after_seconds > 0) res.set_header("Retry-After", std::to_string(e.retry_after_seconds));
    if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
    write_json(res, e.status, error_body(e));
}

namespace {
thread_local int current_fd = -1;

struct Route {
    std::regex pattern;
    std::string label, method;
};
const std::vector<Route>& routes() {
    static const std::vector<Route> table = {
        {std::regex("/v1/images/generations"), "/v1/images/generations", "POST"},
        {std::regex("/v1/images/edits"), "/v1/images/edits", "POST"},
        {std::regex("/v1/images/[^/]+/content"), "/v1/images/{id}/content", "GET"},
        {std::regex("/v1/models"), "/v1/models", "GET"},
        {std::regex("/v1/loras"), "/v1/loras", "GET"},
        {std::regex("/v1/list_loras"), "/v1/list_loras", "GET"},
        {std::regex("/v1/set_lora"), "/v1/set_lora", "POST"},
        {std::regex("/v1/unmerge_lora_weights"), "/v1/unmerge_lora_weights", "POST"},
        {std::regex("/v1/models/[^/]+"), "/v1/models/{id}", "GET"},
        {std::regex("/health"), "/health", "GET"},
        {std::regex("/health/live"), "/health/live", "GET"},
        {std::regex("/metrics"), "/metrics", "GET"},
        {std::regex("/"), "/", "GET"},
    };
    return table;
}
const Route* find_route(const std::string& path) {
    for (const Route& r : routes())
        if (std::regex_match(path, r.pattern)) return &r;
    return nullptr;
}
}  // namespace

void note_request_socket(const httplib::Request& req) {
    current_fd = -1;
    DIR* dir = opendir("/proc/self/fd");
    if (!dir) return;
    while (dirent* e = readdir(dir)) {
        int fd = -1;
        const std::string_view name(e->d_name);
        if (std::from_chars(name.data(), name.data() + name.size(), fd).ec != std::errc() || fd == dirfd(dir)) continue;
        sockaddr_storage local{}, peer{};
        socklen_t local_len = sizeof local, peer_len = sizeof peer;
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0 ||
            getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0)
            continue;
        auto port_of = [](const sockaddr_storage& a) {
            if (a.ss_family == AF_INET)
                return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port));
            if (a.ss_family == AF_INET6)
                return static_cast<int>(ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port));
            return -1;
        };
        if (port_of(local) == req.local_port && port_of(peer) == req.remote_port) {
            current_fd = fd;
            break;
        }
    }
    closedir(dir);
}

RequestNote& request_note() {
    thread_local RequestNote note;
    return note;
}

bool current_client_gone() {
    if (current_fd < 0) return false;
    pollfd p{current_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP | POLLNVAL)) return true;
    if (p.revents & POLLIN) {
        char c;
        return recv(current_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;  // 0: orderly shutdown by the peer
    }
    return false;
}

std::string endpoint_label(const std::string& path) {
    const Route* r = find_route(path);
    return r ? r->label : "other";
}

std::string allowed_method(const std::string& path) {
    const Route* r = find_route(path);
    return r ? r->method : "";
}

}  // namespace flux2::server
