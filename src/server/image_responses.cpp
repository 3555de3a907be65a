#include "server/image_responses.h"

#include <chrono>
#include <sstream>

#include "core/parallel.h"
#include "core/text_codec.h"
#include "io/image_encode.h"

namespace flux2::server {

using nlohmann::json;

namespace {
int64_t unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string size_text(const EngineResult& r) { return std::to_string(r.width) + "x" + std::to_string(r.height); }

// The generation parameters travel in PNG text chunks, as `flux2 generate` writes them.
ImageText png_text(const Job& job, const EngineResult& r, size_t index) {
    const EngineRequest& e = job.request.engine;
    const uint64_t seed = e.seeds.empty() ? e.seed + index : e.seeds[index];
    ImageText text{{"prompt", e.prompt},
                   {"seed", std::to_string(seed)},
                   {"steps", std::to_string(r.num_steps)},
                   {"guidance", str(r.guidance_scale)},
                   {"software", "flux2.cpp"}};
    if (!e.negative_prompt.empty()) text["negative_prompt"] = e.negative_prompt;
    return text;
}
}  // namespace

std::string event_prefix(const Job& job) {
    return job.request.kind == RequestKind::edit ? "image_edit" : "image_generation";
}

json image_items(const Job& job, ImageService& service, const std::string& base_url) {
    const EngineResult& r = job.result();
    const ImageRequest& q = job.request;
    // The images of a batch are encoded at once: a 1024x1024 PNG takes 0.1-0.2 s of one core (PERFORMANCE.md,
    // "Writing the image").
    std::vector<std::vector<uint8_t>> encoded(r.images.size());
    parallel_for(static_cast<int64_t>(r.images.size()), 1, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i)
            encoded[i] = encode_image(r.images[i], q.output_format, q.output_compression, png_text(job, r, i));
    });
    json items = json::array();
    for (size_t i = 0; i < r.images.size(); ++i) {
        std::vector<uint8_t>& bytes = encoded[i];
        json item = {{"revised_prompt", q.engine.prompt}};
        if (q.response_url) {
            const std::string id = service.store().put({std::move(bytes), image_format_mime_type(q.output_format)});
            item["url"] = base_url + "/v1/images/" + id + "/content";
        } else {
            item["b64_json"] = base64_encode(bytes.data(), bytes.size());
        }
        items.push_back(std::move(item));
    }
    return items;
}

json usage_json(const Job& job) {
    const EngineResult& r = job.result();
    int64_t image_tokens = 0;
    for (const Image& ref : job.request.engine.reference_images)
        image_tokens += static_cast<int64_t>(ref.width / 16) * (ref.height / 16);
    // Output tokens: the latent tokens of the generated images (16x16 pixels each).
    const int64_t output_tokens = static_cast<int64_t>(r.images.size()) * (r.width / 16) * (r.height / 16);
    const int64_t input_tokens = r.prompt_tokens + image_tokens;
    return {{"input_tokens", input_tokens},
            {"output_tokens", output_tokens},
            {"total_tokens", input_tokens + output_tokens},
            {"input_tokens_details", {{"text_tokens", r.prompt_tokens}, {"image_tokens", image_tokens}}}};
}

json image_response(const Job& job, json items) {
    const EngineResult& r = job.result();
    return {{"id", job.id},
            {"created", unix_now()},
            {"data", std::move(items)},
            {"output_format", image_format_name(job.request.output_format)},
            {"size", size_text(r)},
            {"usage", usage_json(job)},
            {"inference_time_s", r.text_encoder_seconds + r.denoise_seconds + r.decode_seconds},
            {"peak_memory_mb", static_cast<double>(r.peak_memory_bytes) / (1024.0 * 1024.0)}};
}

std::string server_timing(const Job& job) {
    const EngineResult& r = job.result();
    const double queue = job.queue_seconds();
    std::ostringstream os;
    os.precision(3);
    os << std::fixed << "queue;dur=" << queue * 1e3 << ", text_encoder;dur=" << r.text_encoder_seconds * 1e3
       << ", denoise;dur=" << r.denoise_seconds * 1e3 << ", decode;dur=" << r.decode_seconds * 1e3
       << ", total;dur=" << (queue + r.text_encoder_seconds + r.denoise_seconds + r.decode_seconds) * 1e3;
    return os.str();
}

std::string sse_event(const std::string& event, const json& data) {
    return "event: " + event + "\ndata: " + data.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace flux2::server
