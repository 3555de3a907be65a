#pragma once
// Small pieces every route shares: JSON and error responses, the route table for 405s and metrics labels, and the
// check whether the client of the current request has gone away. Only server/*.cpp include this (and httplib).
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

#include "server/api_error.h"

namespace flux2::server {

void write_json(httplib::Response& res, int status, const nlohmann::json& body);
void write_error(httplib::Response& res, const ApiError& e);

// Finds the socket of `req` among the process's descriptors (httplib does not expose it) and remembers it for this
// thread; current_client_gone() then tells whether the peer has closed it. A body already read leaves nothing to
// misread; pipelined bytes mean "still there". Without a match the client is assumed present.
void note_request_socket(const httplib::Request& req);
bool current_client_gone();

// What a handler learnt about its request, for the one log line the server writes per request. Thread-local: one
// connection thread handles a request from its first byte to its last.
struct RequestNote {
    std::string id, size;
    double queue_seconds = -1, compute_seconds = -1;
};
RequestNote& request_note();

// The metrics label of a path: its route pattern ("/v1/images/{id}/content"), "other" for unknown paths, so that
// clients cannot grow the label set.
std::string endpoint_label(const std::string& path);

// The method a known path takes ("GET" or "POST"); empty for unknown paths.
std::string allowed_method(const std::string& path);

}  // namespace flux2::server
