// The demo model's prompt-following checker (src/eval/scene_check.h) on renders of tools/demo_model/scenes.py
// (tests/data/demo): the generator's own images must score 100%, wrong ones must fail the right checks.
#include "eval/scene_check.h"

#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "io/image.h"
#include "test_util.h"

namespace flux2 {
namespace {

const SceneSpec& examples() {
    static const SceneSpec spec = read_scene_spec(test::data_path("demo/expectations.json"));
    return spec;
}

const ScenePrompt& example(const std::string& id) {
    for (const auto& p : examples().prompts)
        if (p.id == id) return p;
    throw Error("no example " + id);
}

Image example_image(const ScenePrompt& p) { return read_image(test::data_path("demo/" + p.file)); }

TEST(SceneCheck, GeneratorRendersScoreFull) {
    int checked = 0;
    for (const ScenePrompt& p : examples().prompts) {
        if (p.id.starts_with("wrong")) continue;
        const SceneResult r = check_scene(example_image(p), p, examples());
        EXPECT_TRUE(r.pass()) << p.id << ": " << describe(r, examples());
        EXPECT_EQ(r.checks_passed, 2 + 3 * static_cast<int>(p.shapes.size()));
        EXPECT_TRUE(r.extras.empty()) << p.id;
        ++checked;
    }
    EXPECT_EQ(checked, 4);
}

TEST(SceneCheck, WrongRenderFailsTheRightChecks) {
    // wrong1.png: the white square drawn top left instead of top right, the cyan triangle drawn as a circle.
    const ScenePrompt& p = example("wrong-1");
    const SceneResult r = check_scene(example_image(p), p, examples());
    EXPECT_FALSE(r.pass());
    EXPECT_TRUE(r.background_ok);
    ASSERT_EQ(r.shapes.size(), 2u);
    EXPECT_FALSE(r.shapes[0].found);
    EXPECT_FALSE(r.shapes[0].kind_ok);
    EXPECT_TRUE(r.shapes[1].found);
    EXPECT_EQ(r.shapes[1].kind, "circle");
    EXPECT_FALSE(r.shapes[1].kind_ok);
    EXPECT_TRUE(r.shapes[1].size_ok);
    ASSERT_EQ(r.extras.size(), 1u);  // the misplaced white square
    EXPECT_EQ(examples().colours[r.extras[0].colour].first, "white");
    EXPECT_EQ(r.checks_passed, 3);  // background, cyan found, cyan size
    EXPECT_EQ(r.checks_total, 8);
}

TEST(SceneCheck, EachWrongExpectationFailsOnlyItsCheck) {
    const ScenePrompt& base = example("example-2");  // yellow triangle center, purple circle bottom, green square
    const Image image = example_image(base);
    auto run = [&](const ScenePrompt& p) { return check_scene(image, p, examples()); };

    ScenePrompt p = base;
    p.background = "black";
    SceneResult r = run(p);
    EXPECT_FALSE(r.background_ok);
    EXPECT_EQ(r.background, "blue");
    EXPECT_EQ(r.checks_passed, r.checks_total - 1);

    p = base;
    p.shapes[1].shape = "square";
    r = run(p);
    EXPECT_TRUE(r.shapes[1].found);
    EXPECT_FALSE(r.shapes[1].kind_ok);
    EXPECT_EQ(r.checks_passed, r.checks_total - 1);

    p = base;
    p.shapes[0].size = "large";
    r = run(p);
    EXPECT_FALSE(r.shapes[0].size_ok);
    EXPECT_EQ(r.checks_passed, r.checks_total - 1);

    // A wrong colour: the shape is missing (3 checks) and the real one is an extra region.
    p = base;
    p.shapes[2].colour = "red";
    r = run(p);
    EXPECT_FALSE(r.shapes[2].found);
    EXPECT_EQ(r.extras.size(), 1u);
    EXPECT_EQ(r.checks_passed, r.checks_total - 4);

    // A wrong cell likewise.
    p = base;
    p.shapes[1].position = "bottom right";
    r = run(p);
    EXPECT_FALSE(r.shapes[1].found);
    EXPECT_EQ(r.checks_passed, r.checks_total - 4);

    // An expected shape that is not drawn at all.
    p = base;
    p.shapes.push_back({"circle", "white", "small", "top right"});
    r = run(p);
    EXPECT_FALSE(r.shapes[3].found);
    EXPECT_EQ(r.checks_passed, r.checks_total - 3);
}

TEST(SceneCheck, ToleratesNoiseAndScale) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> noise(-25, 25);
    for (const ScenePrompt& p : examples().prompts) {
        if (p.id.starts_with("wrong")) continue;
        const Image clean = example_image(p);
        Image noisy = clean;
        for (uint8_t& v : noisy.rgb) v = static_cast<uint8_t>(std::clamp(v + noise(rng), 0, 255));
        SceneResult r = check_scene(noisy, p, examples());
        EXPECT_TRUE(r.pass()) << p.id << " with noise: " << describe(r, examples());
        // Twice the size (nearest neighbour): cells, noise threshold and sizes scale with the image.
        Image big = Image::blank(clean.width * 2, clean.height * 2);
        for (int y = 0; y < big.height; ++y)
            for (int x = 0; x < big.width; ++x) std::copy_n(clean.pixel(x / 2, y / 2), 3, big.pixel(x, y));
        r = check_scene(big, p, examples());
        EXPECT_TRUE(r.pass()) << p.id << " at 2x: " << describe(r, examples());
    }
}

TEST(SceneCheck, BlankImageFindsOnlyTheBackground) {
    Image img = Image::blank(128, 128);  // black
    const ScenePrompt& p = example("example-0");
    const SceneResult r = check_scene(img, p, examples());
    EXPECT_EQ(r.background, "black");
    EXPECT_FALSE(r.background_ok);
    EXPECT_FALSE(r.shapes[0].found);
    EXPECT_EQ(r.checks_passed, 1);  // only "no extra regions"
}

TEST(SceneCheck, ScoresPerSplit) {
    std::vector<ScenePrompt> prompts;
    std::vector<SceneResult> results;
    for (const ScenePrompt& p : examples().prompts) {
        prompts.push_back(p);
        results.push_back(check_scene(example_image(p), p, examples()));
    }
    const auto scores = score_splits(prompts, results);
    EXPECT_EQ(scores.at("seen").prompts, 4);  // examples 0-2 and wrong-1
    EXPECT_EQ(scores.at("seen").passed, 3);
    EXPECT_DOUBLE_EQ(scores.at("seen").pass_rate(), 75.0);
    EXPECT_EQ(scores.at("heldout").prompts, 1);
    EXPECT_DOUBLE_EQ(scores.at("heldout").pass_rate(), 100.0);
    EXPECT_EQ(scores.at("all").prompts, 5);
    const nlohmann::json j = to_json(results.back(), examples());
    EXPECT_EQ(j["pass"], false);
    EXPECT_EQ(j["extra_regions"].size(), 1u);
}

TEST(SceneCheck, CommittedEvaluationList) {
    const SceneSpec spec = read_scene_spec(std::string(FLUX2_ASSETS_DIR) + "/demo_eval_prompts.json");
    int seen = 0, heldout = 0;
    for (const auto& p : spec.prompts) (p.split == "seen" ? seen : heldout)++;
    EXPECT_EQ(seen, 24);
    EXPECT_EQ(heldout, 16);
    EXPECT_EQ(spec.colours.size(), examples().colours.size());
}

TEST(SceneCheck, RejectsBadLists) {
    nlohmann::json j = {
        {"colours", {{"red", {230, 30, 30}}, {"blue", {30, 70, 230}}}},
        {"prompts",
         {{{"id", "a"},
           {"split", "seen"},
           {"prompt", "x"},
           {"background", "red"},
           {"shapes", {{{"shape", "circle"}, {"colour", "blue"}, {"size", "small"}, {"position", "left"}}}}}}}};
    EXPECT_NO_THROW(parse_scene_spec(j, "t"));
    auto expect_error = [](nlohmann::json bad, const std::string& part) {
        try {
            parse_scene_spec(bad, "t");
            ADD_FAILURE() << "no error, expected one with: " << part;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
        }
    };
    nlohmann::json bad = j;
    bad["prompts"][0]["shapes"][0]["colour"] = "orange";
    expect_error(bad, "unknown colour 'orange'");
    bad = j;
    bad["prompts"][0]["shapes"][0]["position"] = "middle";
    expect_error(bad, "unknown position 'middle'");
    bad = j;
    bad["prompts"][0]["shapes"][0]["colour"] = "red";
    expect_error(bad, "cannot be seen");
    bad = j;
    bad["prompts"][0]["split"] = "train";
    expect_error(bad, "unknown split");
}

}  // namespace
}  // namespace flux2
