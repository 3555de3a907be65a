// `flux2 eval`: the demo model's prompt-following score (docs/DEMO_MODEL.md). Generates one image per prompt of a
// fixed list with the server's resident pipeline (Flux2Engine; the same component flags as `generate`) and checks each
// with the deterministic colour-region checker of src/eval/scene_check.h; prints a line per prompt and the seen /
// held-out scores.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "backend/backend.h"
#include "cli/commands.h"
#include "cli/demo.h"
#include "cli/model_options.h"
#include "core/error.h"
#include "core/log.h"
#include "eval/scene_check.h"
#include "io/image.h"
#include "pipeline/flux2_engine.h"
#include "pipeline/flux2_pipeline.h"

namespace fs = std::filesystem;

namespace flux2::cli {

namespace {
struct EvalArgs {
    ModelOptions model;
    std::string prompts, split = "all", check_images, output_dir, negative_prompt;
    int width = 0, height = 0, steps = 0, limit = 0, max_sequence_length = 512;
    float guidance_scale = NAN;
    double require_seen = -1, require_heldout = -1;
    bool json = false;
};

// Generates one image per prompt with the pipeline named by the model options.
std::vector<Image> generate_all(EvalArgs& a, const SceneSpec& spec, const std::vector<ScenePrompt>& prompts,
                                nlohmann::json& run_info) {
    if (a.model.demo()) {
        // The list was made for the trained demo model, whatever $FLUX2_DEMO_DIR names for `generate`.
        a.model.components.model_path = trained_demo_model_path();
        log_info("no --model-path given: evaluating the trained demo model (", a.model.components.model_path, ")");
    }
    // The server's resident pipeline: loaded once, one request per prompt, the same pixels as `generate`.
    std::unique_ptr<Flux2Engine> engine = Flux2Engine::load(a.model.engine_options());
    if (!a.output_dir.empty()) fs::create_directories(a.output_dir);

    std::vector<Image> images;
    EngineResult out;
    for (size_t i = 0; i < prompts.size(); ++i) {
        EngineRequest r;
        r.prompt = prompts[i].prompt;
        r.negative_prompt = a.negative_prompt;
        r.width = a.width > 0 ? a.width : spec.image_size;
        r.height = a.height > 0 ? a.height : spec.image_size;
        r.num_steps = a.steps;
        if (!std::isnan(a.guidance_scale)) r.guidance_scale = a.guidance_scale;
        r.seed = prompts[i].seed;
        r.max_sequence_length = a.max_sequence_length;
        out = engine->generate(r);
        images.push_back(out.images.at(0));
        log_info("[", i + 1, "/", prompts.size(), "] ", prompts[i].id, " generated in ",
                 out.text_encoder_seconds + out.denoise_seconds + out.decode_seconds, " s");
        if (!a.output_dir.empty()) {
            const ImageText text{{"prompt", prompts[i].prompt},
                                 {"seed", std::to_string(prompts[i].seed)},
                                 {"steps", std::to_string(out.num_steps)},
                                 {"guidance", str(out.guidance_scale)},
                                 {"model", engine->paths().transformer},
                                 {"software", "flux2.cpp eval"}};
            write_png((fs::path(a.output_dir) / (prompts[i].id + ".png")).string(), images.back(), text);
        }
    }
    run_info = {{"model", engine->paths().transformer},
                {"variant", variant_name(engine->variant())},
                {"steps", out.num_steps},
                {"guidance", out.guidance_scale},
                {"device", engine->backend().name()},
                {"precision", a.model.precision},
                {"activations", a.model.activations}};
    log_info("linear paths: ", engine->backend().path_summary());
    return images;
}

void run_eval(EvalArgs a) {
    check(a.split == "all" || a.split == "seen" || a.split == "heldout", "--split must be all, seen or heldout");
    check(a.width % 16 == 0 && a.height % 16 == 0, "--width and --height must be multiples of 16");
    const std::string list = a.prompts.empty() ? (assets_dir() / "demo_eval_prompts.json").string() : a.prompts;
    const SceneSpec spec = read_scene_spec(list);
    std::vector<ScenePrompt> prompts;
    for (const ScenePrompt& p : spec.prompts) {
        if (a.split != "all" && p.split != a.split) continue;
        if (a.limit > 0 && static_cast<int>(prompts.size()) >= a.limit) break;
        prompts.push_back(p);
    }
    check(!prompts.empty(), list, ": no prompts selected");

    std::vector<Image> images;
    nlohmann::json run_info = nlohmann::json::object();
    if (!a.check_images.empty()) {
        // Score existing images: <dir>/<file> when the list names one, else <dir>/<id>.png.
        for (const ScenePrompt& p : prompts)
            images.push_back(
                read_image((fs::path(a.check_images) / (p.file.empty() ? p.id + ".png" : p.file)).string()));
        run_info["images"] = a.check_images;
    } else {
        images = generate_all(a, spec, prompts, run_info);
    }

    std::vector<SceneResult> results;
    nlohmann::json per_prompt = nlohmann::json::array();
    for (size_t i = 0; i < prompts.size(); ++i) {
        results.push_back(check_scene(images[i], prompts[i], spec));
        const SceneResult& r = results.back();
        if (a.json) {
            nlohmann::json j = to_json(r, spec);
            j["id"] = prompts[i].id;
            j["split"] = prompts[i].split;
            j["prompt"] = prompts[i].prompt;
            per_prompt.push_back(j);
        } else {
            std::printf("%s %-11s %2d/%-2d %s\n    %s\n", r.pass() ? "PASS" : "FAIL", prompts[i].id.c_str(),
                        r.checks_passed, r.checks_total, prompts[i].prompt.c_str(), describe(r, spec).c_str());
        }
    }
    const auto scores = score_splits(prompts, results);
    if (a.json) {
        nlohmann::json s = nlohmann::json::object();
        for (const auto& [split, sc] : scores)
            s[split] = {{"prompts", sc.prompts},           {"passed", sc.passed},
                        {"pass_rate", sc.pass_rate()},     {"checks_passed", sc.checks_passed},
                        {"checks_total", sc.checks_total}, {"check_rate", sc.check_rate()}};
        const nlohmann::json doc = {{"prompt_list", list}, {"run", run_info}, {"scores", s}, {"prompts", per_prompt}};
        std::printf("%s\n", doc.dump(1).c_str());
    } else {
        for (const char* split : {"seen", "heldout", "all"}) {
            const auto it = scores.find(split);
            if (it == scores.end()) continue;
            const SplitScore& sc = it->second;
            std::printf("%-8s %3d/%-3d prompts pass (%5.1f%%), %5.1f%% of checks\n", split, sc.passed, sc.prompts,
                        sc.pass_rate(), sc.check_rate());
        }
    }
    auto require = [&](const char* split, double minimum) {
        if (minimum < 0) return;
        const auto it = scores.find(split);
        check(it != scores.end(), "--require-", split, " given but no ", split, " prompts were evaluated");
        check(it->second.pass_rate() >= minimum, split, " pass rate ", it->second.pass_rate(),
              "% is below the required ", minimum, "%");
    };
    require("seen", a.require_seen);
    require("heldout", a.require_heldout);
}
}  // namespace

void register_eval(CLI::App& app) {
    auto* cmd = app.add_subcommand(
        "eval",
        "Score prompt following on the demo model's fixed prompt list (docs/DEMO_MODEL.md): one image per prompt,\n"
        "checked for background, shape colours, cells, kinds and sizes by colour regions; prints the seen and\n"
        "held-out scores. Takes the model flags of `generate`; with no --model-path it scores the trained demo model\n"
        "in assets/demo-model.\n"
        "Example: flux2 eval --num-inference-steps 20 --json");
    auto a = std::make_shared<EvalArgs>();
    add_model_options(cmd, a->model);
    cmd->add_option("--prompts", a->prompts, "prompt list JSON (default: the assets' demo_eval_prompts.json)");
    cmd->add_option("--split", a->split, "all, seen or heldout")->capture_default_str();
    cmd->add_option("--limit", a->limit, "evaluate only the first N selected prompts (0: all)");
    cmd->add_option("--width", a->width, "image width (default: the list's image_size)");
    cmd->add_option("--height", a->height, "image height (default: the list's image_size)");
    cmd->add_option("--num-inference-steps", a->steps, "denoising steps (default: the variant's)")
        ->check(CLI::Range(0, 10000));
    cmd->add_option("--guidance-scale", a->guidance_scale, "klein base: CFG scale (default 4.0)");
    cmd->add_option("--negative-prompt", a->negative_prompt, "klein base CFG negative prompt (default empty)");
    cmd->add_option("--max-sequence-length", a->max_sequence_length, "text tokens")->capture_default_str();
    cmd->add_option("--output-dir", a->output_dir, "also write each image as <id>.png here");
    cmd->add_option("--check-images", a->check_images,
                    "score existing images instead of generating: <dir>/<file> or <dir>/<id>.png per prompt");
    cmd->add_option("--require-seen", a->require_seen, "fail (exit 1) when the seen pass rate is below this %");
    cmd->add_option("--require-heldout", a->require_heldout,
                    "fail (exit 1) when the held-out pass rate is below this %");
    cmd->add_flag("--json", a->json, "print one JSON document (per prompt results and scores) instead of text");
    cmd->callback([a] { run_eval(*a); });
}

}  // namespace flux2::cli
