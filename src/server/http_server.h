#pragma once
// The HTTP shell around an ImageService: binds the port, authenticates, bounds bodies, routes, writes errors in
// OpenAI's shape, logs one line per request and counts it in /metrics. The service does the work.
#include <memory>
#include <string>

#include "server/image_service.h"

namespace flux2::server {

struct HttpOptions {
    std::string host = "127.0.0.1";
    int port = 30000;
    std::string api_key;  // empty: no authentication
    int threads = 64;     // connection threads: bounds concurrent connections being served
};

class HttpServer {
public:
    HttpServer(ImageService& service, HttpOptions options);
    ~HttpServer();

    // Binds host:port (port 0: any free port); throws flux2::Error when that fails.
    void bind();
    int port() const;
    // Serves until stop(); returns after in-flight requests have been answered.
    void serve();
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace flux2::server
