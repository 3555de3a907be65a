// One CUTLASS 3.x FP8 GEMM for Hopper in the engine's form: D [m, n] (BF16, row-major) =
// a_scale[m] * b_scale[n] * (A [m, k] E4M3 . B [n, k]^T E4M3) (+ C [m, n] BF16 for the residual shapes), with
// fast accumulation. The scales (and C) are applied in the epilogue: cutlass_scaled_output.cuh.
#pragma once

#include <cutlass/cutlass.h>
#include <cutlass/gemm/device/gemm_universal_adapter.h>

#include <cute/tensor.hpp>
#include <cutlass/epilogue/collective/collective_builder.hpp>
#include <cutlass/epilogue/fusion/sm90_callbacks_tma_warpspecialized.hpp>
#include <cutlass/gemm/collective/collective_builder.hpp>
#include <cutlass/gemm/kernel/gemm_universal.hpp>
#include <cutlass/util/packed_stride.hpp>

#include "cutlass_lab_gemm.h"
#include "cutlass_launch.cuh"
#include "cutlass_scaled_output.cuh"

namespace fp8_lab {

template <int TileM, int TileN, int TileK, int ClusterM, int ClusterN, bool Pingpong, bool Residual, bool StreamK>
struct CutlassFp8Gemm {
    using TileShape = cute::Shape<cute::Int<TileM>, cute::Int<TileN>, cute::Int<TileK>>;
    using ClusterShape = cute::Shape<cute::Int<ClusterM>, cute::Int<ClusterN>, cute::_1>;
    using KernelSchedule = std::conditional_t<Pingpong, cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8FastAccum,
                                              cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8FastAccum>;
    using EpilogueSchedule = std::conditional_t<Pingpong, cutlass::epilogue::TmaWarpSpecialized,
                                                cutlass::epilogue::TmaWarpSpecializedCooperative>;
    using Scales = ScaledOutput<TileShape, false, Residual>;
    using ElementC = typename Scales::ElementC;
    using ElementD = typename Scales::ElementD;

    using Epilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, TileShape, ClusterShape,
        cutlass::epilogue::collective::EpilogueTileAuto, float, float, ElementC, cutlass::layout::RowMajor, 8, ElementD,
        cutlass::layout::RowMajor, 8, EpilogueSchedule, typename Scales::Tree>::CollectiveOp;
    using Mainloop = typename cutlass::gemm::collective::CollectiveBuilder<
        cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, cutlass::float_e4m3_t, cutlass::layout::RowMajor, 16,
        cutlass::float_e4m3_t, cutlass::layout::ColumnMajor, 16, float, TileShape, ClusterShape,
        cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(sizeof(typename Epilogue::SharedStorage))>,
        KernelSchedule>::CollectiveOp;
    using Kernel = cutlass::gemm::kernel::GemmUniversal<
        cute::Shape<int, int, int, int>, Mainloop, Epilogue,
        std::conditional_t<StreamK, cutlass::gemm::StreamKScheduler, cutlass::gemm::PersistentScheduler>>;
    using Gemm = cutlass::gemm::device::GemmUniversalAdapter<Kernel>;

    static typename Gemm::Arguments arguments(const LabGemmCall& call) {
        using StrideA = typename Gemm::GemmKernel::StrideA;
        using StrideB = typename Gemm::GemmKernel::StrideB;
        using StrideC = typename Gemm::GemmKernel::StrideC;
        using StrideD = typename Gemm::GemmKernel::StrideD;
        const int m = static_cast<int>(call.m), n = static_cast<int>(call.n), k = static_cast<int>(call.k);
        typename Gemm::Arguments args{
            cutlass::gemm::GemmUniversalMode::kGemm,
            {m, n, k, 1},
            {static_cast<const cutlass::float_e4m3_t*>(call.a), cutlass::make_cute_packed_stride(StrideA{}, {m, k, 1}),
             static_cast<const cutlass::float_e4m3_t*>(call.b), cutlass::make_cute_packed_stride(StrideB{}, {n, k, 1})},
            {{},
             static_cast<const ElementD*>(call.c),
             cutlass::make_cute_packed_stride(StrideC{}, {m, n, 1}),
             static_cast<ElementD*>(call.d),
             cutlass::make_cute_packed_stride(StrideD{}, {m, n, 1})}};
        Scales::set_arguments(args.epilogue.thread, call.a_scales, call.b_scales);
        args.scheduler.max_swizzle_size = call.swizzle;
        using Raster = cutlass::gemm::kernel::detail::PersistentTileSchedulerSm90Params::RasterOrderOptions;
        args.scheduler.raster_order = call.raster == 'm'   ? Raster::AlongM
                                      : call.raster == 'n' ? Raster::AlongN
                                                           : Raster::Heuristic;
        return args;
    }

    static bool run(const LabGemmCall& call, void* workspace, size_t workspace_bytes, cudaStream_t stream,
                    const char** why) {
        return launch_cutlass<Gemm>(arguments(call), workspace, workspace_bytes, stream, why);
    }
};

}  // namespace fp8_lab
