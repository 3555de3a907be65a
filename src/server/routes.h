#pragma once
// Route registration, one function per API family; http_server.cpp calls them.
#include <httplib.h>

#include <string>

#include "server/image_service.h"

namespace flux2::server {

// POST /v1/images/generations, POST /v1/images/edits, GET /v1/images/{id}/content.
void register_image_routes(httplib::Server& http, ImageService& service);
// Writes 503 model_loading and returns true while the models load (routes that need the model call it first).
bool answer_if_loading(const ImageService& service, httplib::Response& res);
// LoRAs: GET /v1/loras, and sglang's admin shapes GET /v1/list_loras, POST /v1/set_lora,
// POST /v1/unmerge_lora_weights.
void register_lora_routes(httplib::Server& http, ImageService& service);
// GET /v1/models[/{id}], /health, /health/live, /metrics, and the page at /.
void register_info_routes(httplib::Server& http, ImageService& service);

}  // namespace flux2::server
