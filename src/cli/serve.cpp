// `flux2 serve`: the OpenAI-compatible image server. The port is bound first (so /health can say "loading"), then
// the models load once and stay resident; SIGINT/SIGTERM stop accepting, let the running job finish within
// --shutdown-timeout and exit 0.
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "cli/commands.h"
#include "cli/demo.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/log.h"
#include "models/flux2/flux2_transformer.h"
#include "models/transformer_checkpoint.h"
#include "pipeline/flux2_engine.h"
#include "server/http_server.h"

namespace flux2::cli {

namespace {
struct ServeArgs {
    ModelOptions model;
    server::HttpOptions http;
    server::ServiceOptions service;
    ParallelOptions parallel;
    int64_t max_body_mb = 32;
    int shutdown_timeout = 30;
    int url_ttl = 600;
};

// SIGINT/SIGTERM write one byte to a pipe that the shutdown thread reads. A handler (not sigwait with the signals
// blocked) because threads started before serve runs, such as OpenBLAS's pool, keep them unblocked, and the kernel
// may deliver the signal to any of them.
int stop_pipe[2] = {-1, -1};
void on_stop_signal(int sig) {
    const char c = static_cast<char>(sig);
    [[maybe_unused]] ssize_t n = write(stop_pipe[1], &c, 1);
}

// The signal that stopped the server, or 0 when woken by the process itself.
int wait_for_stop_signal() {
    char c = 0;
    while (read(stop_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return c;
}

void run_serve(ServeArgs a) {
    check(pipe(stop_pipe) == 0, "cannot create the shutdown pipe");
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    // A client that disconnects mid-write must not kill the process.
    signal(SIGPIPE, SIG_IGN);

    check(a.max_body_mb >= 1, "--max-body-mb must be at least 1");
    check(a.service.limits.max_pixels >= 256, "--max-pixels must be at least 256 (16x16)");
    check(a.service.limits.max_queue >= 0, "--max-queue must be 0 or more");
    check(a.service.limits.max_images >= 1, "--max-images must be at least 1");
    check(a.shutdown_timeout >= 0 && a.url_ttl >= 0, "--shutdown-timeout and --url-ttl must be 0 or more");
    check_parallel_options(a.parallel);
    check_offload_for_gpus(a.model, a.parallel);
    if (a.parallel.gpus > 1) a.model.offload = "none";  // every rank keeps its weights
    a.service.limits.max_body_bytes = a.max_body_mb << 20;
    a.service.url_ttl = std::chrono::seconds(a.url_ttl);
    if (a.model.demo()) {
        const std::string folder = use_demo_model(a.model.components);
        log_info("no --model-path given: serving the built-in demo model (", folder,
                 "), which draws coloured circles, squares and triangles on a plain background (docs/DEMO_MODEL.md)");
        a.service.default_width = a.service.default_height = kDemoImageSize;
        if (a.service.model_id.empty()) a.service.model_id = "flux2-demo";
        if (a.service.lora_dir.empty()) {
            a.service.lora_dir = demo_lora_dir(folder);
            if (!a.service.lora_dir.empty())
                log_info("--lora-dir ", a.service.lora_dir,
                         ": requests may load the demo LoRA from there, e.g. "
                         "\"lora\": [{\"path\": \"demo-stripes-lora-kohya.safetensors\"}] (striped backgrounds)");
        }
    }
    if (a.http.host != "127.0.0.1" && a.http.host != "localhost" && a.http.host != "::1" && a.http.api_key.empty())
        log_warn("listening on ", a.http.host, " without --api-key: anyone who can reach this port can use the GPU");

    server::ImageService service(a.service);
    server::HttpServer http(service, a.http);
    http.bind();
    log_info("listening on http://", a.http.host, ":", http.port(),
             " (loading the models; /health says ok when ready)");
    std::thread serving([&] { http.serve(); });

    std::atomic<bool> stopping{false};
    std::thread signals([&] {
        const int sig = wait_for_stop_signal();
        if (sig == 0) return;
        stopping = true;
        log_info("received ", sig == SIGINT ? "SIGINT" : "SIGTERM", ": no new requests; waiting up to ",
                 a.shutdown_timeout, " s for the running job");
        const bool drained = service.shut_down(std::chrono::seconds(a.shutdown_timeout));
        if (!drained) log_warn("the running job did not finish within --shutdown-timeout; it was cancelled");
        http.stop();
    });
    auto wake_signals_thread = [] {
        const char c = 0;
        [[maybe_unused]] ssize_t n = write(stop_pipe[1], &c, 1);
    };

    try {
        const EngineOptions eo = a.model.engine_options();
        std::unique_ptr<Flux2Engine> engine = Flux2Engine::load(eo);
        check(a.parallel.gpus == 1 || a.parallel.parallel != "cfg" || engine->has_true_cfg(),
              "--parallel cfg runs true CFG's two forwards on two GPUs, but ", variant_name(engine->variant()),
              " has no unconditional forward (klein base only)");
        // Ranks 1..N-1 load their own copy (Ulysses, cfg) or shard (tp) of the same transformer file.
        start_parallel(a.parallel, engine->transformer(), eo.backend, [&](Backend& rank_backend) {
            TransformerCheckpoint ckpt = TransformerCheckpoint::open(engine->paths().transformer);
            return Flux2Transformer::load(ckpt, engine->config(), rank_backend);
        });
        if (!stopping) {
            service.attach_engine(std::move(engine));
            log_info("ready: serving '", service.model().id, "' on http://", a.http.host, ":", http.port());
        }
    } catch (...) {
        http.stop();
        serving.join();
        wake_signals_thread();
        signals.join();
        throw;
    }
    serving.join();
    if (!stopping) wake_signals_thread();
    signals.join();
    log_info("server stopped");
}
}  // namespace

void register_serve(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "serve",
        "Serve the model over HTTP with the OpenAI images API (POST /v1/images/generations and /v1/images/edits),\n"
        "streamed progress, /health, /metrics and a page for people at /. The models load once and stay resident;\n"
        "jobs run one at a time in arrival order. With no --model-path it serves the built-in demo model.\n"
        "Example: flux2 serve --model-path black-forest-labs/FLUX.2-klein-4B --device cuda --port 30000\n"
        "         curl localhost:30000/v1/images/generations -H 'Content-Type: application/json' \\\n"
        "              -d '{\"prompt\": \"a cat\", \"size\": \"1024x1024\"}'\n"
        "See docs/SERVER.md for every field, the errors and the limits.");
    auto a = std::make_shared<ServeArgs>();
    add_model_options(cmd, a->model);
    add_parallel_options(cmd, a->parallel);
    cmd->add_option("--host", a->http.host, "address to listen on (127.0.0.1: this machine only; 0.0.0.0: all)")
        ->capture_default_str();
    cmd->add_option("--port", a->http.port, "TCP port (0: any free one, logged)")
        ->capture_default_str()
        ->check(CLI::Range(0, 65535));
    cmd->add_option("--api-key", a->http.api_key,
                    "require 'Authorization: Bearer KEY' on every route but /, /health and /health/live")
        ->envname("FLUX2_API_KEY");
    cmd->add_option("--max-queue", a->service.limits.max_queue, "jobs waiting behind the running one; more get 429")
        ->capture_default_str();
    cmd->add_option("--max-body-mb", a->max_body_mb, "largest request body in MiB (413 beyond)")->capture_default_str();
    cmd->add_option("--max-pixels", a->service.limits.max_pixels,
                    "largest width x height of an output image (422 beyond)")
        ->capture_default_str();
    cmd->add_option("--max-images", a->service.limits.max_images, "reference images per edit request")
        ->capture_default_str();
    cmd->add_option("--shutdown-timeout", a->shutdown_timeout,
                    "seconds SIGINT/SIGTERM waits for the running job before cancelling it")
        ->capture_default_str();
    cmd->add_option("--url-ttl", a->url_ttl, "seconds a response_format=url image stays downloadable")
        ->capture_default_str();
    cmd->add_option("--url-max", a->service.url_max, "images kept for url responses (the oldest go first)")
        ->capture_default_str();
    cmd->add_option("--lora-dir", a->service.lora_dir,
                    "folder requests and /v1/set_lora may load LoRA files from (paths relative to it); without it\n"
                    "only the adapters given with --lora can be chosen, by name (the built-in demo model: default\n"
                    "assets/demo-lora, its striped-background LoRA)");
    cmd->add_option("--model-id", a->service.model_id, "the model's name in /v1/models (default: from its path)");
    cmd->add_option("--http-threads", a->http.threads, "connections served at once")
        ->capture_default_str()
        ->check(CLI::Range(4, 1024));
    cmd->callback([a] { run_serve(*a); });
}

}  // namespace flux2::cli
