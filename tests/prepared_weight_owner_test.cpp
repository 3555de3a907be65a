// A layer's prepared form (LinearWeight::prepared) belongs to the backend that made it, named by its instance id:
// a backend made where a destroyed one lived gets a new id, so it prepares the layer again instead of taking the
// old one's form (on a GPU: device memory of another precision and stream).
#include <gtest/gtest.h>

#include <cstddef>
#include <new>

#include "backend/cpu/cpu_backend.h"

namespace flux2 {
namespace {

// A dense F32 layer of zeros [out, in].
LinearWeight zero_weight(int64_t out, int64_t in) {
    LinearWeight w;
    w.name = "owned";
    w.out_features = out;
    w.in_features = in;
    w.format = WeightFormat::dense;
    w.dense.dtype = DType::F32;
    w.dense.bytes.assign(static_cast<size_t>(out * in) * sizeof(float), 0);
    return w;
}

TEST(PreparedWeightOwner, ABackendAtADestroyedOnesAddressPreparesAgain) {
    LinearWeight w = zero_weight(4, 8);
    Tensor x = Tensor::zeros({2, 8});
    alignas(CpuBackend) std::byte storage[sizeof(CpuBackend)];
    BackendOptions options;

    auto* first = new (storage) CpuBackend(options);
    first->linear(x, w);
    const uint64_t first_owner = w.prepared_owner;
    EXPECT_EQ(first_owner, first->instance_id());
    first->~CpuBackend();

    auto* second = new (storage) CpuBackend(options);  // the same address
    EXPECT_NE(second->instance_id(), first_owner);
    second->linear(x, w);
    EXPECT_EQ(w.prepared_owner, second->instance_id());
    second->~CpuBackend();
}

}  // namespace
}  // namespace flux2
