#pragma once
// A finished job as the OpenAI images API answers it: the JSON body (b64_json or url per image, usage, timings),
// the streamed events, and the Server-Timing header.
#include <nlohmann/json.hpp>
#include <string>

#include "server/image_service.h"

namespace flux2::server {

// "image_generation" or "image_edit": the prefix of the job's stream events.
std::string event_prefix(const Job& job);

// The job's images encoded in the requested format, as "data" items. With response_format "url" the bytes go to the
// store and each item holds `base_url` + /v1/images/{id}/content.
nlohmann::json image_items(const Job& job, ImageService& service, const std::string& base_url);
// The whole 200 body for a completed job.
nlohmann::json image_response(const Job& job, nlohmann::json items);
nlohmann::json usage_json(const Job& job);

// Server-Timing: queue, text_encoder, denoise, decode, total (milliseconds).
std::string server_timing(const Job& job);

// One Server-Sent Event.
std::string sse_event(const std::string& event, const nlohmann::json& data);

}  // namespace flux2::server
