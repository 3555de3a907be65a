// The server's request parser: every field kind, the defaults, and the ApiError (status, param, code) of each bad
// input, without sockets or a model.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/text_codec.h"
#include "io/image.h"
#include "server/request_parser.h"

namespace flux2::server {
namespace {

ModelFacts demo_facts(bool cfg = false) {
    ModelFacts m;
    m.id = "flux2-demo";
    m.true_cfg = cfg;
    m.default_width = m.default_height = 256;
    return m;
}

ImageRequest gen(const std::string& body, const ServerLimits& limits = {}, bool cfg = false) {
    return parse_image_json(RequestKind::generation, body, limits, demo_facts(cfg));
}

// Runs `fn`, expecting an ApiError with this status and param.
template <typename Fn>
ApiError expect_error(Fn fn, int status, const std::string& param) {
    try {
        fn();
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status, status) << e.what();
        EXPECT_EQ(e.param, param) << e.what();
        return e;
    }
    ADD_FAILURE() << "no ApiError (expected " << status << " for '" << param << "')";
    return ApiError(0, "", "", "", "");
}

std::string png_data_url(int w, int h) {
    const std::vector<uint8_t> png = encode_png(Image::blank(w, h));
    return "data:image/png;base64," + base64_encode(png.data(), png.size());
}

TEST(RequestParser, DefaultsFromTheModel) {
    const ImageRequest r = gen(R"({"prompt": "a cat"})");
    EXPECT_EQ(r.kind, RequestKind::generation);
    EXPECT_EQ(r.engine.prompt, "a cat");
    EXPECT_EQ(r.engine.width, 256);
    EXPECT_EQ(r.engine.height, 256);
    EXPECT_EQ(r.engine.num_images, 1);
    EXPECT_EQ(r.engine.num_steps, 0);  // the variant's default
    EXPECT_FALSE(r.engine.guidance_scale.has_value());
    EXPECT_TRUE(r.engine.seeds.empty());
    EXPECT_EQ(r.output_format, ImageFormat::png);
    EXPECT_FALSE(r.response_url);
    EXPECT_FALSE(r.stream);
}

TEST(RequestParser, OpenAiFieldsAndSglangExtensions) {
    const ImageRequest r = gen(R"({"prompt": "x", "model": "gpt-image-1", "n": 2, "size": "512x256",
        "response_format": "url", "output_format": "webp", "output_compression": 80, "user": "u1", "stream": true,
        "num_inference_steps": 8, "guidance_scale": 3.5, "seed": 42, "max_sequence_length": 128,
        "quality": "high", "background": "auto", "some_future_key": {"nested": [1, 2]}})");
    EXPECT_EQ(r.engine.num_images, 2);
    EXPECT_EQ(r.engine.width, 512);
    EXPECT_EQ(r.engine.height, 256);
    EXPECT_TRUE(r.response_url);
    EXPECT_EQ(r.output_format, ImageFormat::webp);
    EXPECT_EQ(r.output_compression, 80);
    EXPECT_TRUE(r.stream);
    EXPECT_EQ(r.engine.num_steps, 8);
    EXPECT_FLOAT_EQ(*r.engine.guidance_scale, 3.5f);
    EXPECT_EQ(r.engine.seeds, (std::vector<uint64_t>{42, 43}));  // image i: seed + i, as the CLI
    EXPECT_EQ(r.engine.max_sequence_length, 128);
    EXPECT_EQ(r.model, "gpt-image-1");
    EXPECT_EQ(r.user, "u1");

    // width/height override size; a seed list gives one seed per image; null is "not given".
    const ImageRequest s = gen(R"({"prompt": "x", "size": "512x512", "width": 64, "height": 32, "n": 3,
        "seed": [5, 1, 18446744073709551615], "stream": null})");
    EXPECT_EQ(s.engine.width, 64);
    EXPECT_EQ(s.engine.height, 32);
    EXPECT_EQ(s.engine.seeds, (std::vector<uint64_t>{5, 1, 18446744073709551615ull}));
    EXPECT_FALSE(s.stream);
}

TEST(RequestParser, MalformedBodiesAre400) {
    expect_error([] { gen("{\"prompt\": \"x\""); }, 400, "");
    expect_error([] { gen("[1, 2]"); }, 400, "");
    expect_error([] { gen(""); }, 400, "");
    expect_error([] { gen(std::string(100, '[') + std::string(100, ']')); }, 400, "");
    EXPECT_EQ(json_nesting_depth(R"({"a": "[[[[", "b": [[1]]})"), 3);
}

TEST(RequestParser, FieldErrorsNameTheField) {
    expect_error([] { gen("{}"); }, 400, "prompt");
    expect_error([] { gen(R"({"prompt": ""})"); }, 400, "prompt");
    expect_error([] { gen(R"({"prompt": 7})"); }, 400, "prompt");
    expect_error([] { gen(R"({"prompt": "x", "n": "2"})"); }, 400, "n");
    expect_error([] { gen(R"({"prompt": "x", "n": 0})"); }, 400, "n");
    expect_error([] { gen(R"({"prompt": "x", "n": 11})"); }, 400, "n");
    expect_error([] { gen(R"({"prompt": "x", "n": 1.5})"); }, 400, "n");
    expect_error([] { gen(R"({"prompt": "x", "n": 1e308})"); }, 400, "n");
    expect_error([] { gen(R"({"prompt": "x", "num_inference_steps": 9223372036854775808})"); }, 400,
                 "num_inference_steps");
    expect_error([] { gen(R"({"prompt": "x", "guidance_scale": "high"})"); }, 400, "guidance_scale");
    expect_error([] { gen(R"({"prompt": "x", "guidance_scale": -1})"); }, 400, "guidance_scale");
    expect_error([] { gen(R"({"prompt": "x", "response_format": "file"})"); }, 400, "response_format");
    expect_error([] { gen(R"({"prompt": "x", "output_format": "gif"})"); }, 400, "output_format");
    expect_error([] { gen(R"({"prompt": "x", "output_compression": 101})"); }, 400, "output_compression");
    expect_error([] { gen(R"({"prompt": "x", "stream": "yes"})"); }, 400, "stream");
    expect_error([] { gen(R"({"prompt": "x", "seed": -1})"); }, 400, "seed");
    expect_error([] { gen(R"({"prompt": "x", "seed": [1, 2]})"); }, 400, "seed");
    expect_error([] { gen(R"({"prompt": "x", "seed": "7"})"); }, 400, "seed");
    expect_error([] { gen(R"({"prompt": "x", "size": "big"})"); }, 400, "size");
    expect_error([] { gen(R"({"prompt": "x", "size": "64x"})"); }, 400, "size");
    expect_error([] { gen(R"({"prompt": "x", "max_sequence_length": 513})"); }, 400, "max_sequence_length");
    expect_error([] { gen("{\"prompt\": \"a\\u0000b\"}"); }, 400, "prompt");
    ServerLimits small;
    small.max_prompt_bytes = 8;
    expect_error([&] { gen(R"({"prompt": "a long prompt"})", small); }, 400, "prompt");
}

TEST(RequestParser, SizesAre422) {
    expect_error([] { gen(R"({"prompt": "x", "size": "100x64"})"); }, 422, "size");
    expect_error([] { gen(R"({"prompt": "x", "width": 64, "height": 40})"); }, 422, "height");
    expect_error([] { gen(R"({"prompt": "x", "width": 64})"); }, 422, "height");
    ServerLimits limits;
    limits.max_pixels = 128 * 128;
    EXPECT_NO_THROW(gen(R"({"prompt": "x", "size": "128x128"})", limits));
    const ApiError e = expect_error([&] { gen(R"({"prompt": "x", "size": "256x128"})", limits); }, 422, "size");
    EXPECT_EQ(e.code, "invalid_size");
    // Sides beyond 2^20 (found by fuzz/image_request_fuzz.cpp: this one's product with 48 overflowed, wrapped below
    // the pixel limit and gave a negative width).
    const ApiError huge =
        expect_error([] { gen(R"({"prompt": "x", "size": "8446744718661184464x48"})"); }, 422, "size");
    EXPECT_NE(std::string(huge.what()).find("at most 1048576"), std::string::npos) << huge.what();
    expect_error([] { gen(R"({"prompt": "x", "size": "1048592x16"})"); }, 422, "size");
}

TEST(RequestParser, TrueCfgFieldsOnlyForKleinBase) {
    expect_error([] { gen(R"({"prompt": "x", "negative_prompt": "blur"})"); }, 400, "negative_prompt");
    expect_error([] { gen(R"({"prompt": "x", "true_cfg_scale": 4})"); }, 400, "true_cfg_scale");
    EXPECT_NO_THROW(gen(R"({"prompt": "x", "negative_prompt": ""})"));  // empty means none
    const ImageRequest r = gen(R"({"prompt": "x", "negative_prompt": "blur", "true_cfg_scale": 5})", {}, true);
    EXPECT_EQ(r.engine.negative_prompt, "blur");
    EXPECT_FLOAT_EQ(*r.engine.guidance_scale, 5.0f);
}

TEST(RequestParser, JsonEditsTakeDataUrls) {
    const std::string body = R"({"prompt": "x", "images": [{"image_url": ")" + png_data_url(96, 64) +
                             R"("}, {"image_url": {"url": ")" + png_data_url(64, 64) + R"("}}]})";
    const ImageRequest r = parse_image_json(RequestKind::edit, body, {}, demo_facts());
    EXPECT_EQ(r.kind, RequestKind::edit);
    ASSERT_EQ(r.engine.reference_images.size(), 2u);
    EXPECT_EQ(r.engine.reference_images[0].width, 96);
    EXPECT_EQ(r.engine.width, 96);  // size "auto": the first reference's processed size
    EXPECT_EQ(r.engine.height, 64);

    auto edit = [](const std::string& images) {
        return parse_image_json(RequestKind::edit, R"({"prompt": "x", "images": )" + images + "}", {}, demo_facts());
    };
    expect_error([] { parse_image_json(RequestKind::edit, R"({"prompt": "x"})", {}, demo_facts()); }, 400, "images");
    expect_error([&] { edit("[]"); }, 400, "images");
    expect_error([&] { edit(R"([{"image_url": "https://example.com/cat.png"}])"); }, 400, "images[0].image_url");
    expect_error([&] { edit(R"([{"image_url": "data:image/png;base64,@@@@"}])"); }, 400, "images[0].image_url");
    expect_error([&] { edit(R"([{"image_url": "data:image/png;base64,aGVsbG8gd29ybGQh"}])"); }, 400,
                 "images[0].image_url");  // "hello world!": not an image
    expect_error([&] { edit(R"([{"image_url": ")" + png_data_url(32, 32) + R"("}])"); }, 400,
                 "images[0].image_url");  // smaller than the pipeline's 64-pixel minimum
    expect_error([&] { edit(R"([{"file_id": "file-1"}])"); }, 400, "images[0].image_url");
    ServerLimits one;
    one.max_images = 1;
    expect_error(
        [&] {
            parse_image_json(RequestKind::edit,
                             R"({"prompt": "x", "images": [{"image_url": ")" + png_data_url(64, 64) +
                                 R"("}, {"image_url": ")" + png_data_url(64, 64) + R"("}]})",
                             one, demo_facts());
        },
        400, "images");
}

TEST(RequestParser, MultipartEditsTakeFilesAndTextFields) {
    const std::vector<uint8_t> png = encode_png(Image::blank(64, 80));
    FormData form;
    form.fields = {
        {"prompt", "make it blue"}, {"n", "2"}, {"seed", "9"}, {"stream", "true"}, {"guidance_scale", "2.5"}};
    form.files.push_back({"image[]", "a.png", std::string(png.begin(), png.end())});
    form.files.push_back({"image[]", "b.png", std::string(png.begin(), png.end())});
    const ImageRequest r = parse_edit_form(form, {}, demo_facts());
    EXPECT_EQ(r.engine.reference_images.size(), 2u);
    EXPECT_EQ(r.engine.num_images, 2);
    EXPECT_EQ(r.engine.seeds, (std::vector<uint64_t>{9, 10}));
    EXPECT_TRUE(r.stream);
    EXPECT_EQ(r.engine.width, 64);
    EXPECT_EQ(r.engine.height, 80);
    EXPECT_FLOAT_EQ(*r.engine.guidance_scale, 2.5f);

    FormData bad = form;
    bad.fields = {{"prompt", "x"}, {"n", "two"}};
    expect_error([&] { parse_edit_form(bad, {}, demo_facts()); }, 400, "n");
    bad.fields = {{"prompt", "x"}, {"prompt", "y"}};
    expect_error([&] { parse_edit_form(bad, {}, demo_facts()); }, 400, "prompt");
    FormData no_image;
    no_image.fields = {{"prompt", "x"}};
    expect_error([&] { parse_edit_form(no_image, {}, demo_facts()); }, 400, "image");
    FormData junk = no_image;
    junk.files.push_back({"image", "x.png", "not an image at all"});
    expect_error([&] { parse_edit_form(junk, {}, demo_facts()); }, 400, "image");
    FormData invalid_utf8;
    invalid_utf8.fields = {{"prompt", "caf\xc3"}};
    invalid_utf8.files = form.files;
    expect_error([&] { parse_edit_form(invalid_utf8, {}, demo_facts()); }, 400, "prompt");
}

TEST(RequestParser, LoraListsByNameOrPath) {
    EXPECT_FALSE(gen(R"({"prompt": "x"})").loras.has_value());  // absent: the server's active set
    EXPECT_TRUE(gen(R"({"prompt": "x", "lora": []})").loras->empty());
    const ImageRequest r =
        gen(R"({"prompt": "x", "lora": [{"name": "ink", "strength": 0.5}, {"path": "a/b.safetensors"}]})");
    ASSERT_EQ(r.loras->size(), 2u);
    EXPECT_EQ((*r.loras)[0].name, "ink");
    EXPECT_FLOAT_EQ((*r.loras)[0].strength, 0.5f);
    EXPECT_EQ((*r.loras)[1].path, "a/b.safetensors");
    EXPECT_FLOAT_EQ((*r.loras)[1].strength, 1.0f);
    EXPECT_EQ(gen(R"({"prompt": "x", "lora": {"name": "one"}})").loras->size(), 1u);
    expect_error([] { gen(R"({"prompt": "x", "lora": "ink"})"); }, 400, "lora");
    expect_error([] { gen(R"({"prompt": "x", "lora": [{"strength": 1}]})"); }, 400, "lora[0]");
    expect_error([] { gen(R"({"prompt": "x", "lora": [{"name": "a", "path": "b"}]})"); }, 400, "lora[0]");
    expect_error([] { gen(R"({"prompt": "x", "lora": [{"name": "a", "strength": 11}]})"); }, 400, "lora[0].strength");
    ServerLimits one;
    one.max_loras = 1;
    expect_error([&] { gen(R"({"prompt": "x", "lora": [{"name": "a"}, {"name": "b"}]})", one); }, 400, "lora");
    FormData form;
    form.fields = {{"prompt", "x"}, {"lora", R"([{"name": "ink"}])"}};
    form.files.push_back({"image", "a.png", [] {
                              const std::vector<uint8_t> png = encode_png(Image::blank(64, 64));
                              return std::string(png.begin(), png.end());
                          }()});
    EXPECT_EQ(parse_edit_form(form, {}, demo_facts()).loras->at(0).name, "ink");
}

TEST(RequestParser, HugeDeclaredReferenceIsRefusedBeforeDecoding) {
    // A PNG header declaring 30000 x 30000 pixels: refused from the header alone.
    std::vector<uint8_t> png = encode_png(Image::blank(16, 16));
    png[16] = 0, png[17] = 0, png[18] = 0x75, png[19] = 0x30;  // width 30000
    png[20] = 0, png[21] = 0, png[22] = 0x75, png[23] = 0x30;  // height 30000
    FormData form;
    form.fields = {{"prompt", "x"}};
    form.files.push_back({"image", "big.png", std::string(png.begin(), png.end())});
    const ApiError e = expect_error([&] { parse_edit_form(form, {}, demo_facts()); }, 400, "image");
    EXPECT_NE(std::string(e.what()).find("30000x30000"), std::string::npos) << e.what();

    // Sides beyond PNG's 2^31 - 1: an invalid header, refused without multiplying them.
    std::fill(png.begin() + 16, png.begin() + 24, 0xFF);
    form.files[0].content = std::string(png.begin(), png.end());
    const ApiError huge = expect_error([&] { parse_edit_form(form, {}, demo_facts()); }, 400, "image");
    EXPECT_NE(std::string(huge.what()).find("valid size"), std::string::npos) << huge.what();
}

}  // namespace
}  // namespace flux2::server
