// The OpenAI images routes: parse -> queue -> wait (or stream) -> answer. A client that goes away while its job
// waits or runs cancels it.
#include <chrono>
#include <memory>

#include "core/log.h"
#include "server/http_util.h"
#include "server/image_responses.h"
#include "server/request_parser.h"
#include "server/routes.h"

namespace flux2::server {

using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Status for a request whose client left before the answer (nginx's convention; only logs and metrics see it).
constexpr int kClientClosed = 499;

std::string base_url(const httplib::Request& req) {
    const std::string host = req.get_header_value("Host");
    return "http://" + (host.empty() ? req.local_addr + ":" + std::to_string(req.local_port) : host);
}

FormData form_data(const httplib::Request& req) {
    FormData form;
    for (const auto& [name, part] : req.files) {
        // Images are files whatever their headers say; anything else is a text field.
        if (name == "image" || name == "image[]" || name == "mask" || !part.filename.empty())
            form.files.push_back({name, part.filename, part.content});
        else
            form.fields.emplace(name, part.content);
    }
    return form;
}

ImageRequest parse(RequestKind kind, const httplib::Request& req, const ImageService& service) {
    const std::string type = req.get_header_value("Content-Type");
    if (kind == RequestKind::edit && req.is_multipart_form_data())
        return parse_edit_form(form_data(req), service.options().limits, service.model());
    if (type.find("application/json") == std::string::npos && !type.empty() &&
        type.find("text/plain") == std::string::npos)
        throw bad_request("", "invalid_value", "Content-Type must be application/json",
                          kind == RequestKind::edit ? " or multipart/form-data" : "", ", got ", type.substr(0, 100));
    return parse_image_json(kind, req.body, service.options().limits, service.model());
}

void note_result(const Job& job) {
    RequestNote& note = request_note();
    note.queue_seconds = job.queue_seconds();
    if (job.state() == JobState::completed) {
        const EngineResult& r = job.result();
        note.compute_seconds = r.text_encoder_seconds + r.denoise_seconds + r.decode_seconds;
        note.size = std::to_string(r.images.size()) + "x" + std::to_string(r.width) + "x" + std::to_string(r.height);
    }
}

// Waits for the job, cancelling it if the client goes away, then writes the whole answer.
void answer_when_done(const std::shared_ptr<Job>& job, ImageService& service, const httplib::Request& req,
                      httplib::Response& res) {
    while (!job->wait_done(100ms)) {
        if (current_client_gone()) {
            service.cancel(job);
            res.status = kClientClosed;
            return;
        }
    }
    note_result(*job);
    switch (job->state()) {
        case JobState::completed:
            res.set_header("Server-Timing", server_timing(*job));
            write_json(res, 200, image_response(*job, image_items(*job, service, base_url(req))));
            return;
        case JobState::failed:
            write_error(res, job->error());
            return;
        default:
            write_error(res, unavailable("shutting_down", "the server shut down before this request ran"));
            return;
    }
}

// Server-Sent Events: a progress event per step, then one completed event per image (or an error event).
void stream_job(const std::shared_ptr<Job>& job, ImageService& service, const httplib::Request& req,
                httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    auto sent = std::make_shared<size_t>(0);
    auto quiet_since = std::make_shared<std::chrono::steady_clock::time_point>(std::chrono::steady_clock::now());
    const std::string url = base_url(req);
    ImageService* svc = &service;
    res.set_chunked_content_provider(
        "text/event-stream", [job, svc, sent, quiet_since, url](size_t, httplib::DataSink& sink) {
            const std::string prefix = event_prefix(*job);
            auto send = [&](const std::string& text) {
                if (sink.write(text.data(), text.size())) return true;
                svc->cancel(job);
                return false;
            };
            for (const Job::Progress& p : job->progress_since(*sent, 250ms)) {
                ++*sent;
                *quiet_since = std::chrono::steady_clock::now();
                if (!send(sse_event(prefix + ".progress", {{"type", prefix + ".progress"},
                                                           {"id", job->id},
                                                           {"step", p.step},
                                                           {"total", p.total},
                                                           {"elapsed_s", p.elapsed_s}})))
                    return false;
            }
            const JobState state = job->state();
            if (state == JobState::queued || state == JobState::running || !job->progress_since(*sent, 0ms).empty()) {
                if (current_client_gone()) {
                    svc->cancel(job);
                    return false;
                }
                // A comment after 2 s of silence keeps proxies from timing out and finds clients that have left.
                if (std::chrono::steady_clock::now() - *quiet_since > 2s) {
                    if (!send(": waiting\n\n")) return false;
                    *quiet_since = std::chrono::steady_clock::now();
                }
                return true;
            }
            note_result(*job);
            if (state == JobState::completed) {
                const json items = image_items(*job, *svc, url);
                const EngineResult& r = job->result();
                for (size_t i = 0; i < items.size(); ++i) {
                    json event = {{"type", prefix + ".completed"},
                                  {"id", job->id},
                                  {"index", i},
                                  {"created_at", std::chrono::duration_cast<std::chrono::seconds>(
                                                     std::chrono::system_clock::now().time_since_epoch())
                                                     .count()},
                                  {"size", std::to_string(r.width) + "x" + std::to_string(r.height)},
                                  {"output_format", image_format_name(job->request.output_format)},
                                  {"quality", "auto"},
                                  {"background", "opaque"},
                                  {"usage", usage_json(*job)}};
                    event.update(items[i]);
                    if (!send(sse_event(prefix + ".completed", event))) return false;
                }
            } else {
                const ApiError e = state == JobState::failed
                                       ? job->error()
                                       : unavailable("shutting_down", "the server shut down before this request ran");
                json body = error_body(e);
                body["type"] = "error";
                if (!send(sse_event("error", body))) return false;
            }
            sink.done();
            return true;
        });
}

void handle_images(RequestKind kind, ImageService& service, const httplib::Request& req, httplib::Response& res) {
    try {
        note_request_socket(req);
        std::shared_ptr<Job> job = service.submit(parse(kind, req, service));
        request_note().id = job->id;
        res.set_header("X-Request-Id", job->id);
        if (job->request.stream)
            stream_job(job, service, req, res);
        else
            answer_when_done(job, service, req, res);
    } catch (const ApiError& e) {
        write_error(res, e);
    }
}

}  // namespace

void register_image_routes(httplib::Server& http, ImageService& service) {
    http.Post("/v1/images/generations", [&service](const httplib::Request& req, httplib::Response& res) {
        handle_images(RequestKind::generation, service, req, res);
    });
    http.Post("/v1/images/edits", [&service](const httplib::Request& req, httplib::Response& res) {
        handle_images(RequestKind::edit, service, req, res);
    });
    http.Get("/v1/images/([^/]+)/content", [&service](const httplib::Request& req, httplib::Response& res) {
        std::optional<StoredImage> img = service.store().get(req.matches[1]);
        if (!img) {
            write_error(res, not_found("not_found", "no image '" + std::string(req.matches[1]) +
                                                        "' (url images are kept for --url-ttl seconds, at most "
                                                        "--url-max of them)"));
            return;
        }
        res.status = 200;
        res.set_content(reinterpret_cast<const char*>(img->bytes.data()), img->bytes.size(), img->mime_type.c_str());
    });
}

}  // namespace flux2::server
