// --offload on the GPU. model: giving the device copies of the weights back (and the recorded steps with them) and
// preparing them again at the next use changes nothing, on the fp8 path with NVFP4 weights resident as fp8 or in
// 4 bits, for the transformer (replayed steps included) and the text encoder, and a recorded step's own memory
// counts toward the peak and goes back. layers: streaming the weights through the device (as NVFP4 or as E4M3 made
// at load) gives what residency gives.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>
#ifdef FLUX2_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "backend/backend.h"
#include "cuda_test_util.h"
#include "golden_data.h"
#include "io/safetensors.h"
#include "models/flux2/flux2_transformer.h"
#include "models/text_encoder/text_encoder.h"

namespace flux2 {
namespace {

TEST(CudaOffload, ReleasedWeightsComeBackTheSame) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    for (const std::string residency : {"", "fp4"}) {
        auto backend = make_backend(test::cuda_options("fp8", residency));
        Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-nvfp4.safetensors"), *backend);
        const Flux2Inputs in = test::tiny_klein_case0();
        const std::vector<float> first = model.forward(in).to_vector();
        const std::vector<float> replayed = model.forward(in).to_vector();
        const int64_t held = backend->memory_in_use_bytes();
        EXPECT_GT(model.release_device_weights(), 0);
        EXPECT_LT(backend->memory_in_use_bytes(), held) << "residency '" << residency << "'";
        EXPECT_EQ(model.forward(in).to_vector(), first) << "residency '" << residency << "'";
        EXPECT_EQ(model.forward(in).to_vector(), replayed) << "residency '" << residency << "'";

        TextEncoder te = TextEncoder::load(test::data_path("tiny-qwen3"), {1, 2, 3}, *backend);
        auto g = SafetensorsFile::open(test::data_path("text-encoder-golden.safetensors"));
        const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
        const std::vector<float> embeds = te.encode(tokens).to_vector();
        EXPECT_GT(te.release_device_weights(), 0);
        EXPECT_EQ(te.encode(tokens).to_vector(), embeds);
    }
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// The memory the backend maps beyond its pool's tensors (the graph arena, in these tests): the peak restarted from
// what is held now, less the pool's share.
int64_t mapped_beyond_tensors(Backend& backend) {
    backend.synchronize();
    backend.reset_peak_memory();
    return backend.peak_memory_bytes() - backend.memory_in_use_bytes();
}

// A recorded step keeps its intermediates mapped in the graph arena between replays: the peak counts them on top of
// the eager tensors (as during a VAE decode after the steps), release_cached_memory gives them back (and the next
// replay maps them again, with the same outputs), and dropping the recordings gives them back too.
TEST(CudaOffload, RecordedStepMemoryCountsAndGoesBack) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    auto backend = make_backend(test::cuda_options("fp8"));
    Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-nvfp4.safetensors"), *backend);
    const Flux2Inputs in = test::tiny_klein_case0();
    std::vector<float> replayed;
    for (int i = 0; i < 3; ++i) replayed = model.forward(in).to_vector();  // eager, recorded, replayed
    const int64_t arena = mapped_beyond_tensors(*backend);
    ASSERT_GT(arena, 0) << "the recorded step maps no memory for its intermediates";

    backend->release_cached_memory();
    EXPECT_EQ(mapped_beyond_tensors(*backend), 0);

    EXPECT_EQ(model.forward(in).to_vector(), replayed);
    EXPECT_EQ(mapped_beyond_tensors(*backend), arena);
    EXPECT_GT(model.release_device_weights(), 0);  // drops the recordings
    EXPECT_EQ(mapped_beyond_tensors(*backend), 0);
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// Recorded ops that write 2 * x into out through a temporary of x's size, the recording's own memory.
std::shared_ptr<RecordedOps> record_doubling(Backend& backend, const Tensor& x, Tensor& out) {
    backend.begin_recording();
    {
        const Tensor doubled = backend.add(x, x);
        backend.copy_into(doubled, 0, x.dim(-1), out, 0, 0);
    }
    return backend.end_recording();
}

// Recordings share the graph arena: two recorded ops with temporaries of 64 and 128 MiB map 128 MiB, not 192, and
// both replay right (the smaller one after the larger, over the same memory); dropping the larger leaves the memory
// mapped until it is released, and the next replay maps only what the smaller needs.
TEST(CudaOffload, RecordingsShareTheGraphArena) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    auto backend = make_backend(test::cuda_options("fp8"));
    const int64_t mib = int64_t{1} << 20;
    auto filled = [&](int64_t rows, float value) {
        return backend->upload(Tensor::from_f32(Shape{1, rows, 8192}, std::vector<float>(rows * 8192, value)));
    };
    Tensor small = filled(4096, 1.5f), big = filled(8192, -2.0f);
    Tensor small_out = backend->zeros(small.shape()), big_out = backend->zeros(big.shape());
    std::shared_ptr<RecordedOps> small_ops = record_doubling(*backend, small, small_out);
    std::shared_ptr<RecordedOps> big_ops = record_doubling(*backend, big, big_out);
    EXPECT_EQ(mapped_beyond_tensors(*backend), 128 * mib);
    backend->replay(*big_ops);
    backend->replay(*small_ops);
    const std::vector<float> s = backend->download(small_out).to_vector(), b = backend->download(big_out).to_vector();
    EXPECT_TRUE(std::all_of(s.begin(), s.end(), [](float v) { return v == 3.0f; }));
    EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](float v) { return v == -4.0f; }));

    big_ops.reset();
    EXPECT_EQ(mapped_beyond_tensors(*backend), 128 * mib);
    backend->release_cached_memory();
    backend->upload_into(Tensor::from_f32(small.shape(), std::vector<float>(small.numel(), 0.25f)), small);
    backend->replay(*small_ops);
    EXPECT_EQ(mapped_beyond_tensors(*backend), 64 * mib);
    const std::vector<float> again = backend->download(small_out).to_vector();
    EXPECT_TRUE(std::all_of(again.begin(), again.end(), [](float v) { return v == 0.5f; }));
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// What --offload auto sizes by (Backend::memory_available_bytes): the driver's free memory plus what the backend
// holds, so a tensor of its own (and the freed block its pool keeps) moves memory from one to the other and leaves
// the sum where it was, while the driver's free memory drops.
TEST(CudaOffload, AvailableMemoryCountsWhatTheBackendHolds) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    auto backend = make_backend(test::cuda_options("fp8"));
    auto driver_free = [] {
        size_t free = 0, total = 0;
        EXPECT_EQ(cudaMemGetInfo(&free, &total), cudaSuccess);
        return static_cast<int64_t>(free);
    };
    const int64_t slack = int64_t{64} << 20, gib = int64_t{1} << 30;
    // The default pool is the device's: blocks earlier tests freed stay reserved in it and would serve the tensor.
    backend->release_cached_memory();
    const int64_t before = backend->memory_available_bytes(), free_before = driver_free();
    EXPECT_LE(before, backend->memory_capacity_bytes());
    EXPECT_GE(before, free_before - slack);
    {
        Tensor held = backend->zeros(Shape{gib / 2});  // BF16
        backend->synchronize();
        EXPECT_LE(driver_free(), free_before - gib + slack);
        EXPECT_NEAR(static_cast<double>(backend->memory_available_bytes()), static_cast<double>(before),
                    static_cast<double>(slack));
    }
    backend->synchronize();
    EXPECT_NEAR(static_cast<double>(backend->memory_available_bytes()), static_cast<double>(before),
                static_cast<double>(slack));
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// The peak adds the two pools' high-water marks, which must not be added across a release of cached memory: the
// conditioning linears (--offload layers) are uploaded and given back before the steps map their graph memory.
// Here a 256 MiB block comes and goes, the cache is released, then a recorded op maps its 128 MiB: the peak is
// the block's, not the block's and the graph's together.
TEST(CudaOffload, PeakDoesNotAddWhatWasGivenBackToWhatCameAfter) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    auto backend = make_backend(test::cuda_options("fp8"));
    const int64_t mib = int64_t{1} << 20;
    Tensor x = backend->zeros(Shape{1, 8192, 8192}), out = backend->zeros(Shape{1, 8192, 8192});  // BF16, 128 MiB
    const std::shared_ptr<RecordedOps> ops = record_doubling(*backend, x, out);  // the graph's own 128 MiB
    backend->replay(*ops);
    backend->release_cached_memory();  // the graph's memory goes until the next replay
    backend->reset_peak_memory();
    const int64_t base = backend->memory_in_use_bytes();
    { const Tensor block = backend->zeros(Shape{128 * mib}); }
    backend->release_cached_memory();
    backend->replay(*ops);
    backend->synchronize();
    EXPECT_GE(backend->peak_memory_bytes(), base + 256 * mib);
    EXPECT_LT(backend->peak_memory_bytes(), base + 256 * mib + 64 * mib) << "the graph's 128 MiB counted on top";
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// --offload model's page-locked uploads (host_pinning.cpp): the weights prepared again after a release come through
// the pinned pieces (whole pages in place, the partial pages at each end from a copy) and give the same outputs, on
// the fp8 path (NVFP4 codes and scales, BF16 layers of the mixed file) and the bf16 path; pinning anew (the old
// pins go first) works too.
TEST(CudaOffload, PinnedUploadsComeBackTheSame) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    const Flux2Inputs in = test::tiny_klein_case0();
    for (const std::string precision : {"fp8", "bf16"}) {
        auto backend = make_backend(test::cuda_options(precision));
        Flux2Transformer model =
            Flux2Transformer::load(test::data_path("tiny-klein-nvfp4-mixed.safetensors"), *backend);
        const std::vector<float> first = model.forward(in).to_vector();
        for (int i = 0; i < 2; ++i) {
            const std::string pinned = model.pin_host_weights();
            EXPECT_NE(pinned.find("GB of host memory holding"), std::string::npos) << precision << ": " << pinned;
            EXPECT_GT(model.release_device_weights(), 0);
            EXPECT_EQ(model.forward(in).to_vector(), first) << precision << ", pinned " << i + 1 << " time(s)";
        }

        TextEncoder te = TextEncoder::load(test::data_path("tiny-qwen3"), {1, 2, 3}, *backend);
        auto g = SafetensorsFile::open(test::data_path("text-encoder-golden.safetensors"));
        const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
        const std::vector<float> embeds = te.encode(tokens).to_vector();
        EXPECT_FALSE(te.pin_host_weights().empty());
        EXPECT_GT(te.release_device_weights(), 0);
        EXPECT_EQ(te.encode(tokens).to_vector(), embeds) << precision;
    }
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// --offload layers: the blocks' (decoder layers') weights come through the two rotating device buffers and give
// exactly what 4-bit residency gives (the same per-layer conversion) op by op, recorded and replayed, with the
// wrap-around copy of the first block (the tiny transformer has an even number of blocks, the encoder an odd one).
// The buffers' memory goes back between runs (release_buffers: the transformer's before the decode, the encoder's
// after each prompt) and the next run, replayed at the same addresses, still gives the same.
TEST(CudaOffload, StreamedLayersGiveTheResidentOutputs) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    const Flux2Inputs in = test::tiny_klein_case0();
    std::vector<std::vector<float>> resident;
    {
        auto backend = make_backend(test::cuda_options("fp8", "fp4"));
        Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-nvfp4.safetensors"), *backend);
        for (int i = 0; i < 3; ++i) resident.push_back(model.forward(in).to_vector());
    }
    auto backend = make_backend(test::cuda_options("fp8"));
    // Every block streamed, some kept resident within a budget (an odd or even number streamed: with and without
    // the wrap-around copy), all resident; none, one or every streamed block carrying its weights as E4M3.
    bool mixed = false, some_e4m3 = false;
    // (The tiny model's double blocks hold ~0.5 MB resident, its single blocks ~0.2 MB.)
    for (const int64_t budget : {int64_t{0}, int64_t{600} << 10, int64_t{1} << 20, int64_t{1} << 40}) {
        for (const int e4m3 : {0, 1, 100}) {
            Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-nvfp4.safetensors"), *backend);
            const std::string streams = model.stream_block_weights({budget, e4m3});
            EXPECT_NE(streams.find("linears in"), std::string::npos) << streams;
            mixed = mixed ||
                    (streams.find("stay resident") != std::string::npos && streams.find(" 0 of") == std::string::npos);
            const bool as_e4m3 = streams.find("as E4M3") != std::string::npos;
            EXPECT_EQ(as_e4m3, e4m3 > 0 && streams.find(" 0 of") == std::string::npos) << streams;
            some_e4m3 = some_e4m3 || as_e4m3;
            // Eager, recorded + the eager values, replayed twice.
            for (int i = 0; i < 4; ++i)
                EXPECT_EQ(model.forward(in).to_vector(), resident[std::min(i, 2)])
                    << "forward " << i << ", --stream-e4m3 " << e4m3 << ": " << streams;
            const int64_t held = backend->memory_in_use_bytes();
            model.release_stream_buffers();
            if (streams.find(" 0 of") == std::string::npos) EXPECT_LT(backend->memory_in_use_bytes(), held) << streams;
            EXPECT_EQ(model.forward(in).to_vector(), resident[2]) << "replayed after a release: " << streams;
            EXPECT_EQ(backend->memory_in_use_bytes(), held) << streams;
        }
    }
    EXPECT_TRUE(mixed) << "no budget kept some blocks resident and streamed others";
    EXPECT_TRUE(some_e4m3);
    EXPECT_NE(backend->path_summary().find("nvfp4(streamed)"), std::string::npos) << backend->path_summary();
    EXPECT_NE(backend->path_summary().find("nvfp4(streamed as e4m3)"), std::string::npos) << backend->path_summary();

    TextEncoder te = TextEncoder::load(test::data_path("tiny-qwen3"), {1, 2, 3}, *backend);
    auto g = SafetensorsFile::open(test::data_path("text-encoder-golden.safetensors"));
    const TokenBatch tokens = test::golden_tokens(*g, "qwen3");
    const std::vector<float> embeds = te.encode(tokens).to_vector();
    EXPECT_NE(te.stream_layer_weights().find("linears in"), std::string::npos);
    const int64_t mapped = backend->memory_in_use_bytes();
    EXPECT_EQ(te.encode(tokens).to_vector(), embeds);
    EXPECT_LT(backend->memory_in_use_bytes(), mapped) << "the encoder's buffers stay mapped after a prompt";
    EXPECT_EQ(te.encode(tokens).to_vector(), embeds);
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

// Precomputed timestep conditioning (precompute_conditioning) on the GPU: the recorded step is made again with the
// conditioning as its input and gives what the step computing it gave, eager and replayed; under --offload layers
// the conditioning linears then leave the device, and the steps still give the same.
TEST(CudaOffload, PrecomputedConditioningReplays) {
#ifdef FLUX2_HAVE_CUDA
    if (!cuda_device_available()) GTEST_SKIP() << "no CUDA GPU visible (scripts/device-test.sh runs it)";
    Flux2Inputs in = test::tiny_klein_case0();
    const int64_t B = in.hidden_states.dim(0);
    const float t = in.timestep[0];
    in.timestep.assign(B, t);
    auto backend = make_backend(test::cuda_options("fp8"));
    for (const bool layers : {false, true}) {
        SCOPED_TRACE(layers ? "--offload layers" : "resident");
        Flux2Transformer model = Flux2Transformer::load(test::data_path("tiny-klein-nvfp4.safetensors"), *backend);
        if (layers) EXPECT_NE(model.stream_block_weights().find("linears in"), std::string::npos);
        const std::vector<float> eager = model.forward(in).to_vector();
        model.forward(in);  // recorded
        const std::vector<float> replayed = model.forward(in).to_vector();
        backend->synchronize();
        const int64_t held = backend->memory_in_use_bytes();
        model.precompute_conditioning({0.9f, t}, std::nullopt, B);
        backend->synchronize();
        if (layers) EXPECT_LT(backend->memory_in_use_bytes(), held) << "the conditioning linears stay on the device";
        EXPECT_EQ(model.forward(in).to_vector(), eager);  // recorded anew, with the conditioning as an input
        EXPECT_EQ(model.forward(in).to_vector(), replayed);
        EXPECT_EQ(model.forward(in).to_vector(), replayed);
    }
#else
    GTEST_SKIP() << "this build has no CUDA backend";
#endif
}

}  // namespace
}  // namespace flux2
