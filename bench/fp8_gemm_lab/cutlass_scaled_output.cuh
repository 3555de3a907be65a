// The labs' CUTLASS epilogue, in the engine's FP8 GEMM form (src/backend/cuda/gemm_cublaslt.cpp): the accumulator
// times the weight's per-feature scale, times the token's scale (plus C, BF16, for the residual shapes), rounded to
// BF16 once, as an epilogue visitor tree.
#pragma once

#include <cutlass/cutlass.h>

#include <cute/tensor.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <type_traits>

namespace fp8_lab {

// FeaturesAlongRows: the product runs transposed, D' [features, tokens] (w4a8_gemm.cuh), so the feature scale is one
// value a row of D' and the token scale one a column; otherwise D [tokens, features] (cutlass_fp8_gemm.cuh).
template <class TileShape, bool FeaturesAlongRows, bool Residual>
struct ScaledOutput {
    using ElementD = cutlass::bfloat16_t;
    using ElementC = std::conditional_t<Residual, cutlass::bfloat16_t, void>;
    static constexpr auto kRound = cutlass::FloatRoundStyle::round_to_nearest;

    using PerRow = cutlass::epilogue::fusion::Sm90ColBroadcast<0, TileShape, float, float,
                                                               cute::Stride<cute::_1, cute::_0, cute::_0>>;
    using PerColumn = cutlass::epilogue::fusion::Sm90RowBroadcast<0, TileShape, float, float,
                                                                  cute::Stride<cute::_0, cute::_1, cute::_0>>;
    using FeatureScale = std::conditional_t<FeaturesAlongRows, PerRow, PerColumn>;
    using TokenScale = std::conditional_t<FeaturesAlongRows, PerColumn, PerRow>;
    // feature_scale * acc
    using Scaled = cutlass::epilogue::fusion::Sm90EVT<
        cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, float, float, kRound>, FeatureScale,
        cutlass::epilogue::fusion::Sm90AccFetch>;
    // token_scale * that (+ C)
    using Tree = std::conditional_t<
        Residual,
        cutlass::epilogue::fusion::Sm90EVT<
            cutlass::epilogue::fusion::Sm90Compute<cutlass::homogeneous_multiply_add, ElementD, float, kRound>,
            TokenScale, Scaled, cutlass::epilogue::fusion::Sm90SrcFetch<ElementC>>,
        cutlass::epilogue::fusion::Sm90EVT<
            cutlass::epilogue::fusion::Sm90Compute<cutlass::multiplies, ElementD, float, kRound>, TokenScale, Scaled>>;

    // The tree's arguments (children first, then the node's own) into an epilogue's thread arguments.
    template <class ThreadArguments>
    static void set_arguments(ThreadArguments& thread, const float* token_scales, const float* feature_scales) {
        typename Scaled::Arguments scaled{{feature_scales}, {}, {}};
        if constexpr (Residual) {
            thread = {{token_scales}, scaled, {}, {}};
        } else {
            thread = {{token_scales}, scaled, {}};
        }
    }
};

}  // namespace fp8_lab
