// Flux2Transformer::precompute_conditioning on the CPU: a step whose timestep (and guidance) conditioning was
// computed ahead skips the conditioning linears and gives the same velocity, bit for bit (the same ops on the same
// inputs), for klein and dev; a step with another timestep still computes its own; set_loras drops what was
// computed; guidance must match the model. (The GPU's recorded steps: CudaOffload.PrecomputedConditioningReplays.)
#include <gtest/gtest.h>

#include "backend/cpu/cpu_backend.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "test_util.h"

namespace flux2 {
namespace {

// Counts the linears run.
class CountingBackend final : public CpuBackend {
public:
    CountingBackend() : CpuBackend(BackendOptions{}) {}
    Tensor linear(const Tensor& x, const LinearWeight& w) override {
        ++linears;
        return CpuBackend::linear(x, w);
    }
    int linears = 0;
};

struct Model {
    const char* file;
    const char* golden;
    bool dev;
    int conditioning_linears;  // time 1, 2 (guidance 1, 2), the three modulations, the final norm's
};

TEST(Conditioning, PrecomputedStepsSkipTheirLinearsAndGiveTheSameVelocity) {
    for (const Model m : {Model{"tiny-klein-nvfp4.safetensors", "tiny-klein-golden.safetensors", false, 6},
                          Model{"tiny-dev-nvfp4.safetensors", "tiny-dev-golden.safetensors", true, 8}}) {
        SCOPED_TRACE(m.file);
        CountingBackend be;
        Flux2Transformer model = Flux2Transformer::load(test::data_path(m.file), be);
        auto g = SafetensorsFile::open(test::data_path(m.golden));
        Flux2Inputs in = test::golden_transformer_inputs(*g, "case0.", m.dev);
        const int64_t B = in.hidden_states.dim(0);
        const float t = in.timestep[0];
        in.timestep.assign(B, t);  // a generation's steps: one timestep for the whole batch
        std::optional<float> guidance;
        if (m.dev) {
            guidance = (*in.guidance)[0];
            in.guidance = std::vector<float>(B, *guidance);
        }
        Flux2Inputs other = in;
        other.timestep.assign(B, 0.5f * t);

        be.linears = 0;
        const std::vector<float> computed = model.forward(in).to_vector();
        const int per_step = be.linears;
        const std::vector<float> other_computed = model.forward(other).to_vector();

        model.precompute_conditioning({0.9f, t, 0.1f}, guidance, B);
        be.linears = 0;
        EXPECT_EQ(model.forward(in).to_vector(), computed);
        EXPECT_EQ(be.linears, per_step - m.conditioning_linears);
        be.linears = 0;
        EXPECT_EQ(model.forward(other).to_vector(), other_computed);  // not among those computed ahead
        EXPECT_EQ(be.linears, per_step);

        model.set_loras({});  // adapters change what the conditioning linears make: computed in the step again
        be.linears = 0;
        EXPECT_EQ(model.forward(in).to_vector(), computed);
        EXPECT_EQ(be.linears, per_step);

        const std::optional<float> wrong = m.dev ? std::nullopt : std::optional<float>(4.0f);
        EXPECT_THROW(model.precompute_conditioning({t}, wrong, B), Error);
    }
}

}  // namespace
}  // namespace flux2
