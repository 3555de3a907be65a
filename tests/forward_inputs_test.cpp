// `flux2 forward` takes inputs shaped as diffusers' Flux2 pipelines make them: img_ids / txt_ids of [B, L, 4]
// (the same for every sample) and a guidance value that a klein model ignores.
#include <gtest/gtest.h>

#include <map>

#include "cli_runner.h"
#include "models/flux2/flux2_embeddings.h"
#include "temp_dir.h"

namespace flux2 {
namespace {

using test::contains;

// [n x t] along a new or the outermost axis: `t` repeated n times.
Tensor repeat(const Tensor& t, int64_t n, bool new_axis) {
    std::vector<float> v;
    const std::vector<float> one = t.to_vector();
    for (int64_t i = 0; i < n; ++i) v.insert(v.end(), one.begin(), one.end());
    Shape shape = t.shape();
    if (new_axis)
        shape.insert(shape.begin(), n);
    else
        shape[0] *= n;
    return Tensor::from_f32(shape, v);
}

class ForwardInputs : public test::CliForward {
protected:
    std::map<std::string, Tensor> case0() {
        auto g = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
        std::map<std::string, Tensor> m;
        for (const char* key : {"hidden_states", "encoder_hidden_states", "timestep", "img_ids", "txt_ids"})
            m[key] = test::golden(*g, std::string("case0.") + key);
        return m;
    }
    // The case as a batch of two equal samples, with ids [2, L, 4] as Flux2Pipeline passes them.
    std::map<std::string, Tensor> pipeline_batch() {
        std::map<std::string, Tensor> m = case0();
        for (const char* key : {"hidden_states", "encoder_hidden_states", "timestep"})
            m[key] = repeat(m[key], 2, false);
        for (const char* key : {"img_ids", "txt_ids"}) m[key] = repeat(m[key], 2, true);
        return m;
    }
    test::RunResult run(const std::map<std::string, Tensor>& inputs) {
        SafetensorsWriter w;
        for (const auto& [key, t] : inputs) w.add_f32(key, t);
        w.write(file("inputs.safetensors"));
        return flux2({"forward", "--model", test::data_path("tiny-klein-bf16.safetensors"), "--inputs",
                      file("inputs.safetensors"), "--output", file("out.safetensors"), "--device", "cpu"});
    }
};

TEST_F(ForwardInputs, AcceptsBatchedIdsAsThePipelinePassesThem) {
    test::RunResult r = run(pipeline_batch());
    ASSERT_EQ(r.exit_code, 0) << r;
    const std::vector<float> out = output(), want = expected("out_bf16weights");
    ASSERT_EQ(out.size(), 2 * want.size());
    EXPECT_LE(test::rel_error(std::vector<float>(out.begin(), out.begin() + want.size()), want), 1e-5);
    EXPECT_LE(test::rel_error(std::vector<float>(out.begin() + want.size(), out.end()), want), 1e-5);
}

TEST_F(ForwardInputs, RefusesBatchedIdsThatDiffer) {
    std::map<std::string, Tensor> m = pipeline_batch();
    std::vector<float> ids = m["img_ids"].to_vector();
    ids[ids.size() - 1] += 1.0f;  // sample 1, last token, axis 3
    m["img_ids"] = Tensor::from_f32(m["img_ids"].shape(), ids);
    test::RunResult r = run(m);
    EXPECT_EQ(r.exit_code, 1) << r;
    EXPECT_TRUE(contains(r.err, "img_ids")) << r.err;
    EXPECT_TRUE(contains(r.err, "sample 1 differs from sample 0")) << r.err;
    EXPECT_TRUE(contains(r.err, file("inputs.safetensors"))) << r.err;
}

TEST_F(ForwardInputs, GuidanceForKleinIsIgnoredWithAWarning) {
    std::map<std::string, Tensor> m = case0();
    m["guidance"] = Tensor::from_f32({1}, {4.0f});
    test::RunResult r = run(m);
    ASSERT_EQ(r.exit_code, 0) << r;
    EXPECT_TRUE(contains(r.err, "'guidance' ignored")) << r.err;
    EXPECT_LE(test::rel_error(output(), expected("out_bf16weights")), 1e-5);
}

TEST(SharedPositionIds, TakesTwoOrThreeDimsAndNamesTheMismatch) {
    const Tensor flat = Tensor::from_f32({2, 4}, {0, 1, 2, 3, 4, 5, 6, 7});
    EXPECT_EQ(shared_position_ids(flat, "txt_ids").to_vector(), flat.to_vector());
    const Tensor batched = repeat(flat, 3, true);
    const Tensor shared = shared_position_ids(batched, "txt_ids");
    EXPECT_EQ(shared.shape(), (Shape{2, 4}));
    EXPECT_EQ(shared.to_vector(), flat.to_vector());
    std::vector<float> v = batched.to_vector();
    v[2 * 8 + 5] = 9.0f;  // sample 2, token 1, axis 1
    test::expect_error(
        [&] {
            shared_position_ids(Tensor::from_f32({3, 2, 4}, v), "txt_ids");
        },
        {"txt_ids [3, 2, 4]", "sample 2 differs from sample 0 at [2, 1, 1]"});
    test::expect_error(
        [&] {
            shared_position_ids(Tensor::from_f32({2, 2}, {0, 0, 0, 0}), "img_ids");
        },
        {"img_ids must be [L, 4] or [B, L, 4], got [2, 2]"});
}

}  // namespace
}  // namespace flux2
