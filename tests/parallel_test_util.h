#pragma once
// Several ranks of one transformer on the CPU (N threads, N CPU backends, a fake communicator) against the
// single-device forward, for the Ulysses and tensor-parallel tests.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "backend/backend.h"
#include "backend/communicator.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "test_util.h"

namespace flux2::test {

// Loads `checkpoint` once per rank, lets `join(model, comm)` put each into the group, runs every golden case of
// tiny-`model` on all ranks at once and checks that each rank returns the whole single-device output (<= 1e-6).
inline void expect_ranks_match_one_device(
    const std::string& model, const std::string& checkpoint, int ranks,
    const std::function<void(Flux2Transformer&, std::shared_ptr<Communicator>)>& join, const std::string& label) {
    auto single_backend = make_backend({});
    Flux2Transformer single = Flux2Transformer::load(data_path(checkpoint), *single_backend);
    FakeCommunicatorGroup group(ranks);
    std::vector<std::unique_ptr<Backend>> backends;
    std::vector<Flux2Transformer> models;
    for (int r = 0; r < ranks; ++r) {
        backends.push_back(make_backend({}));
        models.push_back(Flux2Transformer::load(data_path(checkpoint), *backends.back()));
        join(models.back(), group.rank(r));
    }
    auto inputs = SafetensorsFile::open(data_path("tiny-" + model + "-golden.safetensors"));
    for (int i = 0; i < 3; ++i) {
        const std::string prefix = "case" + std::to_string(i) + ".";
        const Flux2Inputs in = golden_transformer_inputs(*inputs, prefix, model == "dev");
        const std::vector<float> expected = single.forward(in).to_vector();
        std::vector<Tensor> outs(ranks);
        std::vector<std::exception_ptr> errors(ranks);
        std::vector<std::thread> threads;
        for (int r = 0; r < ranks; ++r)
            threads.emplace_back([&, r] {
                try {
                    outs[r] = models[r].forward(in);
                } catch (...) {
                    errors[r] = std::current_exception();
                }
            });
        for (auto& t : threads) t.join();
        for (auto& e : errors)
            if (e) std::rethrow_exception(e);
        for (int r = 0; r < ranks; ++r) {
            ASSERT_EQ(outs[r].shape(), in.hidden_states.shape()) << label << " " << prefix << "rank " << r;
            EXPECT_LE(rel_error(outs[r].to_vector(), expected), 1e-6) << label << " " << prefix << "rank " << r;
        }
    }
}

}  // namespace flux2::test
