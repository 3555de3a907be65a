#pragma once
// The prompt-following checker of the demo model (docs/DEMO_MODEL.md): deterministic, no learned model. A prompt
// list (assets/demo_eval_prompts.json, written by tools/demo_model/scenes.py) names for each prompt the background
// colour and, per shape, its colour, kind, size and grid cell; check_scene finds the colour regions of an image and
// says which of those expectations hold.
//
// Rules (the scenes are drawn on a G x G grid, one shape per cell, in far-apart named colours):
// * each pixel takes the nearest named colour, or none when it is farther than half the closest pair's distance
//   from every name (anti-aliased edges, blends);
// * the background is the most frequent colour;
// * regions are 4-connected pixels of one non-background colour; regions smaller than a quarter of a small
//   shape's bounding box are noise and ignored;
// * an expected shape is found when a region of its colour has its centroid in its cell (the largest such region
//   is taken); its kind follows from the region's fill of its bounding box (square >= 0.89 > circle >= 0.64 >
//   triangle, the ideal values being 1, pi/4 and 1/2) and its size from the bounding box's longer side (small below
//   the mean of the small and large sides);
// * a region that no expected shape took is an extra.
// Checks per prompt: background, then per shape found / kind / size (kind and size fail when not found), then
// "no extra regions". A prompt passes when every check holds.
#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/image.h"

namespace flux2 {

struct ExpectedShape {
    std::string shape;     // circle | square | triangle
    std::string colour;    // a name of SceneSpec::colours
    std::string size;      // small | large
    std::string position;  // "top left" ... "bottom right", see cell_of
};

struct ScenePrompt {
    std::string id, split, prompt;  // split: "seen" or "heldout"
    uint64_t seed = 0;
    std::string file;  // optional: an image file for this prompt (tests, --check-images)
    std::string background;
    std::vector<ExpectedShape> shapes;
};

struct SceneSpec {
    int image_size = 128;
    int grid = 3;
    std::vector<std::pair<std::string, std::array<uint8_t, 3>>> colours;
    int small_side = 18, large_side = 34;
    std::vector<ScenePrompt> prompts;
};

// Parses and validates a prompt list (every colour, kind, size and position must be known). origin names it in
// errors.
SceneSpec parse_scene_spec(const nlohmann::json& j, const std::string& origin);
SceneSpec read_scene_spec(const std::string& path);

// Grid cell (row, col) of a position name for a grid of 3 ("top left" = (0, 0), "center" = (1, 1), ...).
std::pair<int, int> cell_of(const std::string& position);

struct Region {
    int colour = -1;  // index into SceneSpec::colours
    int64_t area = 0;
    double cx = 0, cy = 0;               // centroid in pixels
    int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // bounding box, inclusive
    double fill() const;
    int side() const { return std::max(x1 - x0 + 1, y1 - y0 + 1); }
};

struct ShapeResult {
    ExpectedShape expected;
    bool found = false, kind_ok = false, size_ok = false;
    std::string kind, size;  // what the matched region looks like (empty when not found)
    Region region;
};

struct SceneResult {
    std::string background;  // the found background colour's name
    bool background_ok = false;
    std::vector<ShapeResult> shapes;
    std::vector<Region> extras;  // regions no expected shape took
    int checks_passed = 0, checks_total = 0;
    bool pass() const { return checks_passed == checks_total; }
};

// Checks `image` (any size; cells scale with it) against `prompt`.
SceneResult check_scene(const Image& image, const ScenePrompt& prompt, const SceneSpec& spec);

// The regions of an image (exposed for tests): label map + regions above the noise threshold. background receives
// the background colour index.
std::vector<Region> find_regions(const Image& image, const SceneSpec& spec, int* background);

struct SplitScore {
    int prompts = 0, passed = 0, checks_passed = 0, checks_total = 0;
    double pass_rate() const { return prompts ? 100.0 * passed / prompts : 0.0; }
    double check_rate() const { return checks_total ? 100.0 * checks_passed / checks_total : 0.0; }
};

// Per split ("seen", "heldout", and "all").
std::map<std::string, SplitScore> score_splits(const std::vector<ScenePrompt>& prompts,
                                               const std::vector<SceneResult>& results);

// One line per check, for people: "background yellow ok; red circle left: found circle small ...".
std::string describe(const SceneResult& r, const SceneSpec& spec);
nlohmann::json to_json(const SceneResult& r, const SceneSpec& spec);

}  // namespace flux2
