#include "eval/scene_check.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "io/json.h"

namespace flux2 {

namespace {
const std::vector<std::string> kKinds = {"circle", "square", "triangle"};
const std::vector<std::string> kPositions = {"top left", "top",         "top right", "left",        "center",
                                             "right",    "bottom left", "bottom",    "bottom right"};

// Fill of the bounding box between the ideal values: square 1, circle pi/4, triangle 1/2.
constexpr double kSquareFill = 0.89;
constexpr double kCircleFill = 0.64;

std::string get_string(const nlohmann::json& j, const char* key, const std::string& where) {
    check(j.is_object() && j.contains(key) && j[key].is_string(), where, ": '", key, "' must be a string");
    return j[key].get<std::string>();
}

void check_one_of(const std::string& value, const std::vector<std::string>& allowed, const std::string& what,
                  const std::string& where) {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return;
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail(where, ": unknown ", what, " '", value, "' (expected one of ", list, ")");
}

int colour_index(const SceneSpec& spec, const std::string& name) {
    for (size_t i = 0; i < spec.colours.size(); ++i)
        if (spec.colours[i].first == name) return static_cast<int>(i);
    return -1;
}

std::vector<std::string> colour_names(const SceneSpec& spec) {
    std::vector<std::string> names;
    for (const auto& c : spec.colours) names.push_back(c.first);
    return names;
}

int dist2(const uint8_t* p, const std::array<uint8_t, 3>& c) {
    int d = 0;
    for (int k = 0; k < 3; ++k) d += (p[k] - c[k]) * (p[k] - c[k]);
    return d;
}

std::string kind_of(const Region& r) {
    const double f = r.fill();
    return f >= kSquareFill ? "square" : f >= kCircleFill ? "circle" : "triangle";
}

// scale: the spec's image size over this image's, so that sizes are judged in the spec's pixels.
std::string size_of(const Region& r, const SceneSpec& spec, double scale) {
    return 2 * r.side() * scale < spec.small_side + spec.large_side ? "small" : "large";
}

std::pair<int, int> cell_at(const Region& r, int width, int height, int grid) {
    const int col = std::clamp(static_cast<int>(r.cx * grid / width), 0, grid - 1);
    const int row = std::clamp(static_cast<int>(r.cy * grid / height), 0, grid - 1);
    return {row, col};
}
}  // namespace

double Region::fill() const {
    return static_cast<double>(area) / (static_cast<double>(x1 - x0 + 1) * static_cast<double>(y1 - y0 + 1));
}

std::pair<int, int> cell_of(const std::string& position) {
    const auto it = std::find(kPositions.begin(), kPositions.end(), position);
    check(it != kPositions.end(), "unknown position '", position, "'");
    const int i = static_cast<int>(it - kPositions.begin());
    return {i / 3, i % 3};
}

SceneSpec parse_scene_spec(const nlohmann::json& j, const std::string& origin) {
    check(j.is_object(), origin, ": expected a JSON object");
    SceneSpec spec;
    if (j.contains("image_size")) spec.image_size = j["image_size"].get<int>();
    if (j.contains("grid")) spec.grid = j["grid"].get<int>();
    check(spec.grid == 3, origin, ": only a grid of 3 is supported, got ", spec.grid);
    check(j.contains("colours") && j["colours"].is_object() && j["colours"].size() >= 2, origin,
          ": 'colours' must map at least two names to [r, g, b]");
    for (const auto& [name, rgb] : j["colours"].items()) {
        check(rgb.is_array() && rgb.size() == 3, origin, ": colour '", name, "' must be [r, g, b]");
        std::array<uint8_t, 3> c{};
        for (int k = 0; k < 3; ++k) {
            check(rgb[k].is_number_integer() && rgb[k].get<int>() >= 0 && rgb[k].get<int>() <= 255, origin,
                  ": colour '", name, "' components must be integers in [0, 255]");
            c[k] = static_cast<uint8_t>(rgb[k].get<int>());
        }
        spec.colours.emplace_back(name, c);
    }
    if (j.contains("sizes")) {
        spec.small_side = j["sizes"].at("small").get<int>();
        spec.large_side = j["sizes"].at("large").get<int>();
    }
    check(spec.small_side > 0 && spec.large_side > spec.small_side, origin, ": sizes must be 0 < small < large");
    check(j.contains("prompts") && j["prompts"].is_array(), origin, ": 'prompts' must be a list");
    const std::vector<std::string> names = colour_names(spec);
    for (size_t i = 0; i < j["prompts"].size(); ++i) {
        const nlohmann::json& p = j["prompts"][i];
        const std::string where = str(origin, ": prompts[", i, "]");
        ScenePrompt sp;
        sp.id = get_string(p, "id", where);
        sp.split = get_string(p, "split", where);
        check_one_of(sp.split, {"seen", "heldout"}, "split", where);
        sp.prompt = get_string(p, "prompt", where);
        if (p.contains("seed")) sp.seed = p["seed"].get<uint64_t>();
        if (p.contains("file")) sp.file = get_string(p, "file", where);
        sp.background = get_string(p, "background", where);
        check_one_of(sp.background, names, "colour", where);
        check(p.contains("shapes") && p["shapes"].is_array(), where, ": 'shapes' must be a list");
        for (const auto& s : p["shapes"]) {
            ExpectedShape e{get_string(s, "shape", where), get_string(s, "colour", where), get_string(s, "size", where),
                            get_string(s, "position", where)};
            check_one_of(e.shape, kKinds, "shape", where);
            check_one_of(e.colour, names, "colour", where);
            check_one_of(e.size, {"small", "large"}, "size", where);
            check_one_of(e.position, kPositions, "position", where);
            check(e.colour != sp.background, where, ": a ", e.colour, " shape on a ", e.colour,
                  " background cannot be seen");
            for (const auto& other : sp.shapes)
                check(other.position != e.position, where, ": two shapes in the cell '", e.position, "'");
            sp.shapes.push_back(e);
        }
        spec.prompts.push_back(sp);
    }
    return spec;
}

SceneSpec read_scene_spec(const std::string& path) { return parse_scene_spec(read_json_file(path), path); }

std::vector<Region> find_regions(const Image& image, const SceneSpec& spec, int* background) {
    check(image.width > 0 && image.height > 0, "find_regions: empty image");
    const int n_colours = static_cast<int>(spec.colours.size());
    // Pixels farther than half the closest pair's distance from every name are left unlabelled.
    int min_pair = std::numeric_limits<int>::max();
    for (int a = 0; a < n_colours; ++a)
        for (int b = a + 1; b < n_colours; ++b) {
            const auto& ca = spec.colours[a].second;
            const uint8_t pa[3] = {ca[0], ca[1], ca[2]};
            min_pair = std::min(min_pair, dist2(pa, spec.colours[b].second));
        }
    const int max_d2 = min_pair / 4;  // (d / 2)^2

    const int w = image.width, h = image.height;
    std::vector<int8_t> label(static_cast<size_t>(w) * h, -1);
    std::vector<int64_t> counts(n_colours, 0);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const uint8_t* p = image.pixel(x, y);
            int best = -1, best_d = std::numeric_limits<int>::max();
            for (int c = 0; c < n_colours; ++c) {
                const int d = dist2(p, spec.colours[c].second);
                if (d < best_d) best_d = d, best = c;
            }
            if (best_d <= max_d2) {
                label[static_cast<size_t>(y) * w + x] = static_cast<int8_t>(best);
                ++counts[best];
            }
        }
    const int bg = static_cast<int>(std::max_element(counts.begin(), counts.end()) - counts.begin());
    if (background) *background = bg;

    // Noise threshold: a quarter of a small shape's bounding box, scaled to this image's size.
    const double scale = static_cast<double>(std::min(w, h)) / spec.image_size;
    const double small = spec.small_side * scale;
    const int64_t min_area = std::max<int64_t>(4, static_cast<int64_t>(small * small / 4));

    std::vector<uint8_t> seen(label.size(), 0);
    std::vector<Region> regions;
    std::vector<int> stack;
    for (int y0 = 0; y0 < h; ++y0)
        for (int x0 = 0; x0 < w; ++x0) {
            const size_t start = static_cast<size_t>(y0) * w + x0;
            const int c = label[start];
            if (c < 0 || c == bg || seen[start]) continue;
            Region r;
            r.colour = c;
            r.x0 = r.x1 = x0;
            r.y0 = r.y1 = y0;
            double sx = 0, sy = 0;
            seen[start] = 1;
            stack.assign(1, static_cast<int>(start));
            while (!stack.empty()) {
                const int i = stack.back();
                stack.pop_back();
                const int x = i % w, y = i / w;
                ++r.area;
                sx += x + 0.5;
                sy += y + 0.5;
                r.x0 = std::min(r.x0, x), r.x1 = std::max(r.x1, x);
                r.y0 = std::min(r.y0, y), r.y1 = std::max(r.y1, y);
                const int nx[4] = {x - 1, x + 1, x, x}, ny[4] = {y, y, y - 1, y + 1};
                for (int k = 0; k < 4; ++k) {
                    if (nx[k] < 0 || nx[k] >= w || ny[k] < 0 || ny[k] >= h) continue;
                    const size_t j = static_cast<size_t>(ny[k]) * w + nx[k];
                    if (!seen[j] && label[j] == c) {
                        seen[j] = 1;
                        stack.push_back(static_cast<int>(j));
                    }
                }
            }
            r.cx = sx / r.area;
            r.cy = sy / r.area;
            if (r.area >= min_area) regions.push_back(r);
        }
    return regions;
}

SceneResult check_scene(const Image& image, const ScenePrompt& prompt, const SceneSpec& spec) {
    SceneResult out;
    int bg = -1;
    std::vector<Region> regions = find_regions(image, spec, &bg);
    out.background = spec.colours[bg].first;
    out.background_ok = out.background == prompt.background;
    int passed = out.background_ok ? 1 : 0;
    std::vector<bool> taken(regions.size(), false);
    for (const ExpectedShape& e : prompt.shapes) {
        ShapeResult s;
        s.expected = e;
        const int colour = colour_index(spec, e.colour);
        const auto cell = cell_of(e.position);
        int best = -1;
        for (size_t i = 0; i < regions.size(); ++i) {
            if (taken[i] || regions[i].colour != colour) continue;
            if (cell_at(regions[i], image.width, image.height, spec.grid) != cell) continue;
            if (best < 0 || regions[i].area > regions[best].area) best = static_cast<int>(i);
        }
        if (best >= 0) {
            taken[best] = true;
            s.found = true;
            s.region = regions[best];
            s.kind = kind_of(s.region);
            s.size =
                size_of(s.region, spec, static_cast<double>(spec.image_size) / std::min(image.width, image.height));
            s.kind_ok = s.kind == e.shape;
            s.size_ok = s.size == e.size;
        }
        passed += s.found + s.kind_ok + s.size_ok;
        out.shapes.push_back(s);
    }
    for (size_t i = 0; i < regions.size(); ++i)
        if (!taken[i]) out.extras.push_back(regions[i]);
    passed += out.extras.empty() ? 1 : 0;
    out.checks_passed = passed;
    out.checks_total = 2 + 3 * static_cast<int>(prompt.shapes.size());
    return out;
}

std::map<std::string, SplitScore> score_splits(const std::vector<ScenePrompt>& prompts,
                                               const std::vector<SceneResult>& results) {
    check(prompts.size() == results.size(), "score_splits: ", prompts.size(), " prompts but ", results.size(),
          " results");
    std::map<std::string, SplitScore> scores;
    for (size_t i = 0; i < prompts.size(); ++i) {
        for (const std::string& key : {prompts[i].split, std::string("all")}) {
            SplitScore& s = scores[key];
            ++s.prompts;
            s.passed += results[i].pass();
            s.checks_passed += results[i].checks_passed;
            s.checks_total += results[i].checks_total;
        }
    }
    return scores;
}

std::string describe(const SceneResult& r, const SceneSpec& spec) {
    std::string out = str("background ", r.background, r.background_ok ? " ok" : " WRONG");
    for (const ShapeResult& s : r.shapes) {
        const ExpectedShape& e = s.expected;
        out += str("; ", e.size, " ", e.colour, " ", e.shape, " ", e.position, ": ");
        if (!s.found) {
            out += "MISSING";
            continue;
        }
        out += str(s.kind, s.kind_ok ? "" : " (WRONG KIND)", " ", s.size, s.size_ok ? "" : " (WRONG SIZE)");
    }
    if (!r.extras.empty()) {
        out += str("; ", r.extras.size(), " extra region", r.extras.size() == 1 ? "" : "s", ":");
        for (const Region& x : r.extras)
            out += str(" ", spec.colours[x.colour].first, "@", static_cast<int>(x.cx), ",", static_cast<int>(x.cy));
    }
    return out;
}

nlohmann::json to_json(const SceneResult& r, const SceneSpec& spec) {
    auto region_json = [&](const Region& x) {
        return nlohmann::json{{"colour", spec.colours[x.colour].first},
                              {"area", x.area},
                              {"centroid", {x.cx, x.cy}},
                              {"bbox", {x.x0, x.y0, x.x1, x.y1}},
                              {"fill", x.fill()}};
    };
    nlohmann::json shapes = nlohmann::json::array();
    for (const ShapeResult& s : r.shapes) {
        nlohmann::json j = {{"expected",
                             {{"shape", s.expected.shape},
                              {"colour", s.expected.colour},
                              {"size", s.expected.size},
                              {"position", s.expected.position}}},
                            {"found", s.found},
                            {"kind_ok", s.kind_ok},
                            {"size_ok", s.size_ok}};
        if (s.found) {
            j["kind"] = s.kind;
            j["size"] = s.size;
            j["region"] = region_json(s.region);
        }
        shapes.push_back(j);
    }
    nlohmann::json extras = nlohmann::json::array();
    for (const Region& x : r.extras) extras.push_back(region_json(x));
    return {{"pass", r.pass()},           {"checks_passed", r.checks_passed}, {"checks_total", r.checks_total},
            {"background", r.background}, {"background_ok", r.background_ok}, {"shapes", shapes},
            {"extra_regions", extras}};
}

}  // namespace flux2
