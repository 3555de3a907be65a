// One CUTLASS 3.x W4A8 GEMM for Hopper (w4a8_lab.h says what it computes): the mixed-input mainloop with 4-bit codes
// looked up in tables of 8 E4M3 values (cute::tuple<int4b_t, Array<float_e4m3_t, 8>>), converted in registers and fed
// to FP8 wgmma with the activations from shared memory. The product runs transposed, D' [n, m] = w . x^T, so that the
// converted operand is A; D' column-major is y [m, n] row-major. The scales are applied as in cutlass_fp8_gemm.cuh
// (cutlass_scaled_output.cuh), the weight's per row of D' and the token's per column.
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/mixed_dtype_utils.hpp>
#include <cutlass/util/packed_stride.hpp>

#include "cutlass_launch.cuh"
#include "cutlass_scaled_output.cuh"
#include "w4a8_lab.h"

namespace fp8_lab {

template <int TileF, int TileT, int ClusterF, int ClusterT, bool Pingpong>
struct CutlassW4a8Gemm {
    using Mma = cutlass::float_e4m3_t;
    using Code = cutlass::int4b_t;
    using Table = cutlass::Array<Mma, 8>;
    using TileShape = cute::Shape<cute::Int<TileF>, cute::Int<TileT>, cute::_128>;
    using ClusterShape = cute::Shape<cute::Int<ClusterF>, cute::Int<ClusterT>, cute::_1>;
    using KernelSchedule = std::conditional_t<Pingpong, cutlass::gemm::KernelTmaWarpSpecializedPingpong,
                                              cutlass::gemm::KernelTmaWarpSpecializedCooperative>;
    using EpilogueSchedule = std::conditional_t<Pingpong, cutlass::epilogue::TmaWarpSpecialized,
                                                cutlass::epilogue::TmaWarpSpecializedCooperative>;
    using Scales = ScaledOutput<TileShape, true, false>;
    using ElementD = typename Scales::ElementD;
    using LayoutD = cutlass::layout::ColumnMajor;  // D' [n, m]

    using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
        cutlass::epilogue::collective::EpilogueTileAuto, float, float, void, LayoutD, 8, ElementD, LayoutD, 8,
        EpilogueSchedule, typename Scales::Tree>::CollectiveOp;

    // The codes [n, k] K-major, reordered so that the values one thread converts are contiguous (one wide shared
    // memory load instead of 16-bit ones).
    using StrideCodes = cutlass::detail::TagToStrideA_t<cutlass::layout::RowMajor>;
    using ReorderAtom = decltype(cutlass::compute_memory_reordering_atom<Mma>());
    using LayoutCodes =
        decltype(cute::tile_to_shape(ReorderAtom{}, cute::Layout<cute::Shape<int, int, int>, StrideCodes>{}));

    using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, cute::tuple<Code, Table>, LayoutCodes, 32, Mma,
        cutlass::layout::ColumnMajor, 16, float, TileShape, ClusterShape,
        cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
        KernelSchedule>::CollectiveOp;
    using Kernel = cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, Mainloop, Epilogue>;
    using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

    static LayoutCodes codes_layout(long n, long k) {
        return cute::tile_to_shape(ReorderAtom{}, cute::make_shape(static_cast<int>(n), static_cast<int>(k), 1));
    }

    static void reorder(const void* natural, void* reordered, long n, long k) {
        const auto shape = cute::make_shape(static_cast<int>(n), static_cast<int>(k), 1);
        const auto source = cute::make_layout(shape, cutlass::make_cute_packed_stride(StrideCodes{}, shape));
        cutlass::reorder_tensor(static_cast<const Code*>(natural), source, static_cast<Code*>(reordered),
                                codes_layout(n, k));
    }

    static typename Gemm::Arguments arguments(const W4a8Call& call) {
        using StrideX = typename Gemm::GemmKernel::StrideB;
        using StrideD = typename Gemm::GemmKernel::StrideD;
        using StrideTables = typename Mainloop::StrideScale;
        const int m = static_cast<int>(call.m), n = static_cast<int>(call.n), k = static_cast<int>(call.k);
        const int groups = static_cast<int>(call.k / call.group);
        typename Gemm::Arguments args{
            cutlass::gemm::GemmUniversalMode::kGemm,
            {n, m, k, 1},
            {static_cast<const Code*>(call.codes), codes_layout(n, k), static_cast<const Mma*>(call.x),
             cutlass::make_cute_packed_stride(StrideX{}, cute::make_shape(m, k, 1)),
             static_cast<const Table*>(call.tables),
             cutlass::make_cute_packed_stride(StrideTables{}, cute::make_shape(n, groups, 1)),
             static_cast<int>(call.group)},
            {{},
             nullptr,
             cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(n, m, 1)),
             static_cast<ElementD*>(call.y),
             cutlass::make_cute_packed_stride(StrideD{}, cute::make_shape(n, m, 1))}};
        Scales::set_arguments(args.epilogue.thread, call.x_scales, call.w_scales);
        return args;
    }

    static bool run(const W4a8Call& call, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                    const char** why) {
        return launch_cutlass<Gemm>(arguments(call), workspace, workspace_bytes, stream, why);
    }
};

}  // namespace fp8_lab
