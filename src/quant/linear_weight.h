#pragma once
// A linear layer's weight exactly as the checkpoint stores it. Model code never looks inside: the backend picks
// the kernel from `format` (STYLE.md: backends answer, models don't ask).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "quant/lora_branch.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace flux2 {

enum class WeightFormat { dense, nvfp4, fp8 };
const char* weight_format_name(WeightFormat format);  // "bf16"/"f32"/... is dense; "nvfp4"; "fp8"

struct DenseWeight {
    DType dtype = DType::BF16;   // BF16, F16 or F32, as stored
    std::vector<uint8_t> bytes;  // [out, in] row-major
};

// NVFP4 in one canonical form whatever the checkpoint convention was:
//   codes  [out, in/2]  E2M1 pairs, element 2i in the HIGH nibble (BFL/ComfyUI "hi-first");
//   scales [out, in/16] E4M3 block scales, plain row-major (unswizzled, unpadded);
//   W[n,k] = e2m1(code) * e4m3(scale[n, k/16]) * weight_scale_2.
struct Nvfp4Weight {
    std::vector<uint8_t> codes;
    std::vector<uint8_t> scales;
    float weight_scale_2 = 1.0f;
    std::optional<float> input_scale;  // absent -> activations need a dynamic amax(x)/(448*6) scale (W4A4)
};

// FP8 E4M3 with a per-tensor dequantization scale (ComfyUI float8_e4m3fn layers): W = e4m3(code) * scale; or,
// converted here from 16-bit weights (--text-encoder-precision fp8), one scale per output row:
// W[n, :] = e4m3(code) * row_scales[n].
struct Fp8Weight {
    std::vector<uint8_t> codes;     // [out, in]
    float scale = 1.0f;             // per tensor, when row_scales is empty
    std::vector<float> row_scales;  // [out] or empty
};

// Rows [begin, begin + count) of a weight joined by concat_rows came from the module `name` (fused Q/K/V): what
// LoRA keys address, since adapters name the unfused modules.
struct RowPart {
    std::string name;
    int64_t begin = 0, count = 0;
};

struct LinearWeight {
    std::string name;  // internal (diffusers) module name, for logs and errors
    int64_t out_features = 0;
    int64_t in_features = 0;
    WeightFormat format = WeightFormat::dense;
    DenseWeight dense;
    Nvfp4Weight nvfp4;
    Fp8Weight fp8;
    std::vector<RowPart> parts;  // set by concat_rows; empty: all rows are the module `name`

    // Optional low-rank adapter branch (LoRA), run by the backend beside the base GEMM; null: none.
    std::shared_ptr<const LoraBranch> lora;

    // Backend-private prepared form (a dequantized copy, device buffers, ...), created lazily by the backend
    // named in prepared_owner (its instance_id, never reused: a backend's address can be); another backend replaces
    // it with its own.
    mutable std::shared_ptr<void> prepared;
    mutable uint64_t prepared_owner = 0;  // Backend::instance_id() of the backend that made `prepared`; 0: none

    std::string format_label() const;        // "bf16", "f32", "nvfp4", "fp8", ...
    std::vector<RowPart> row_parts() const;  // `parts`, or one part covering every row
    // Fails, naming the layer, unless its rows [begin, begin + count) exist (Backend::linear_rows).
    void check_rows(int64_t begin, int64_t count) const;
};

// Drops the backend's prepared form of w and of its LoRA branch (device copies), so that the memory goes back now;
// the next use prepares it again from the host copy (--offload model). Whatever recorded ops that used it must be
// dropped first. Returns the number of prepared forms dropped (0 or more).
int release_prepared(const LinearWeight& w);

// Exact fp32 values [out, in] (the CPU reference for every path).
std::vector<float> dequantize(const LinearWeight& w);

// Rows [begin, begin+count) as a new weight (fused QKV / MLP splits). NVFP4 scale rows follow their codes.
LinearWeight slice_rows(const LinearWeight& w, int64_t begin, int64_t count, const std::string& new_name);

// The input columns [begin, begin + count) of each range, one after another, as a new weight (the row-parallel
// half of a tensor-parallel pair: each GPU keeps the inputs it owns). NVFP4 ranges must follow 16-column blocks.
struct ColumnRange {
    int64_t begin = 0, count = 0;
};
LinearWeight select_columns(const LinearWeight& w, const std::vector<ColumnRange>& ranges, const std::string& new_name);

// The part of a LoRA branch a sharded layer keeps: B's rows in `rows` (ranges of the layer's outputs, one after
// another: slice_rows / concat_rows shards) and A's columns in `columns` (ranges of its inputs: select_columns
// shards); an empty list keeps that side whole. The rank and scaling stay.
std::shared_ptr<const LoraBranch> shard_lora_branch(const LoraBranch& b, const std::vector<ColumnRange>& rows,
                                                    const std::vector<ColumnRange>& columns);

// Whether concat_rows joins these weights exactly: one format and in_features, and the same per-tensor numbers
// (dense dtype; NVFP4 weight_scale_2 and input_scale; FP8 scale). Q/K/V split from one fused BFL tensor qualify;
// separately quantized layers with different global scales do not (rescaling E4M3 block scales is not exact).
bool can_concat_rows(const std::vector<const LinearWeight*>& parts);

// The parts' rows one after another as one weight (fused Q/K/V projections); throws unless can_concat_rows.
LinearWeight concat_rows(const std::vector<const LinearWeight*>& parts, const std::string& new_name);

// Swaps the two row halves (BFL final_layer (shift, scale) -> diffusers (scale, shift)).
LinearWeight swap_row_halves(const LinearWeight& w);

}  // namespace flux2
