#pragma once
// The low-rank (LoRA) branch of a linear layer: y = base(x) + (x A^T) B^T. The base weight keeps its format
// (NVFP4/FP8 codes are never touched); the backend runs the branch beside the base GEMM. Every adapter's
// strength x alpha / rank is folded into B, and several adapters on one layer are one branch of rank sum(r_i):
// A's rows stacked, B's columns side by side, so they cost one extra GEMM pair, not one per adapter.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace flux2 {

struct LoraBranch {
    int64_t rank = 0;
    int64_t in_features = 0, out_features = 0;
    std::vector<float> a;  // [rank, in]
    std::vector<float> b;  // [out, rank], scaled
    std::string label;     // which adapters, for logs ("style x0.8 + detail x0.4")

    // Backend-private prepared form (device copies), like LinearWeight::prepared. A new set of adapters is a new
    // LoraBranch object, so a prepared copy never outlives the values it was made from.
    mutable std::shared_ptr<void> prepared;
    mutable uint64_t prepared_owner = 0;  // Backend::instance_id() of the backend that made `prepared`; 0: none
};

}  // namespace flux2
