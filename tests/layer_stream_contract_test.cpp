// The model side of --offload layers, on the CPU: a backend whose LayerStream records its calls shows that the
// transformer and the text encoder hand over one group per block (decoder layer) holding that block's linears,
// pass the resident budget on, and bracket each group's ops with enter / leave, in order, on every forward, without
// changing an output. (The GPU's streaming itself is CudaOffload.StreamedLayersGiveTheResidentOutputs.)
#include <gtest/gtest.h>

#include <set>

#include "backend/cpu/cpu_backend.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/text_encoder/text_encoder.h"
#include "test_util.h"

namespace flux2 {
namespace {

class RecordingStream final : public LayerStream {
public:
    explicit RecordingStream(std::vector<std::string>& calls) : calls_(calls) {}
    void enter(size_t group) override { calls_.push_back("enter " + std::to_string(group)); }
    void leave(size_t group) override { calls_.push_back("leave " + std::to_string(group)); }
    void before_replay() override { calls_.push_back("replay"); }
    void release_buffers() override { calls_.push_back("release"); }
    std::string describe() const override { return "recording"; }

private:
    std::vector<std::string>& calls_;
};

class StreamRecordingBackend final : public CpuBackend {
public:
    StreamRecordingBackend() : CpuBackend(BackendOptions{}) {}
    std::unique_ptr<LayerStream> stream_layers(const std::vector<std::vector<const LinearWeight*>>& g,
                                               const LayerStreamOptions& options) override {
        groups = g;
        resident_budget = options.resident_budget_bytes;
        e4m3_groups = options.e4m3_groups;
        return std::make_unique<RecordingStream>(calls);
    }
    std::vector<std::vector<const LinearWeight*>> groups;
    int64_t resident_budget = -1;
    int e4m3_groups = -1;
    std::vector<std::string> calls;
};

// enter 0, leave 0, ..., enter n-1, leave n-1, `times` times over.
std::vector<std::string> brackets(size_t n, int times) {
    std::vector<std::string> out;
    for (int t = 0; t < times; ++t)
        for (size_t i = 0; i < n; ++i)
            out.insert(out.end(), {"enter " + std::to_string(i), "leave " + std::to_string(i)});
    return out;
}

size_t distinct_linears(const std::vector<std::vector<const LinearWeight*>>& groups) {
    std::set<const LinearWeight*> all;
    for (const auto& g : groups) all.insert(g.begin(), g.end());
    return all.size();
}

TEST(LayerStreamContract, TheTransformerBracketsEveryBlock) {
    StreamRecordingBackend be;
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-nvfp4.safetensors"), be);
    auto inputs = SafetensorsFile::open(test::data_path("tiny-klein-golden.safetensors"));
    const Flux2Inputs in = test::golden_transformer_inputs(*inputs, "case0.", false);
    const std::vector<float> before = model.forward(in).to_vector();
    EXPECT_TRUE(be.calls.empty());

    EXPECT_EQ(model.stream_block_weights({12345, 3}), "recording");
    EXPECT_EQ(be.resident_budget, 12345);
    EXPECT_EQ(be.e4m3_groups, 3);
    const Flux2Config& c = model.config();
    ASSERT_EQ(be.groups.size(), static_cast<size_t>(c.num_layers + c.num_single_layers));
    size_t linears = 0;
    for (size_t i = 0; i < be.groups.size(); ++i) {
        // A double block: Q, K, V of both streams (fused or not), both outputs and both MLPs; a single block: 2.
        if (i < static_cast<size_t>(c.num_layers)) {
            EXPECT_GE(be.groups[i].size(), 8u) << "group " << i;
        } else {
            EXPECT_EQ(be.groups[i].size(), 2u) << "group " << i;
        }
        linears += be.groups[i].size();
    }
    EXPECT_EQ(distinct_linears(be.groups), linears);  // no linear in two groups

    EXPECT_EQ(model.forward(in).to_vector(), before);
    EXPECT_EQ(model.forward(in).to_vector(), before);
    std::vector<std::string> expected = brackets(be.groups.size(), 2);
    EXPECT_EQ(be.calls, expected);
    model.release_stream_buffers();  // before the decode; the next forward enters group 0 again
    EXPECT_EQ(model.forward(in).to_vector(), before);
    expected.push_back("release");
    const std::vector<std::string> again = brackets(be.groups.size(), 1);
    expected.insert(expected.end(), again.begin(), again.end());
    EXPECT_EQ(be.calls, expected);
}

TEST(LayerStreamContract, TheTextEncoderBracketsEveryLayer) {
    StreamRecordingBackend be;
    TextEncoder te = TextEncoder::load(test::data_path("tiny-qwen3"), {1, 2, 3}, be);
    auto g = SafetensorsFile::open(test::data_path("text-encoder-golden.safetensors"));
    const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
    const std::vector<float> before = te.encode(tokens).to_vector();

    EXPECT_EQ(te.stream_layer_weights(), "recording");
    EXPECT_EQ(be.resident_budget, 0);  // every layer streams: the encoder runs once per prompt
    ASSERT_EQ(be.groups.size(), 3u);   // the layers up to the deepest requested one
    for (const auto& group : be.groups) EXPECT_EQ(group.size(), 7u);  // q, k, v, o, gate, up, down
    EXPECT_EQ(distinct_linears(be.groups), 21u);
    EXPECT_EQ(te.encode(tokens).to_vector(), before);
    EXPECT_EQ(te.encode(tokens).to_vector(), before);
    // Each prompt ends by giving the buffers back: the transformer runs next.
    std::vector<std::string> one = brackets(3, 1);
    one.push_back("release");
    std::vector<std::string> expected = one;
    expected.insert(expected.end(), one.begin(), one.end());
    EXPECT_EQ(be.calls, expected);
}

}  // namespace
}  // namespace flux2
