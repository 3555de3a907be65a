#include "quant/linear_weight.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "core/error.h"
#include "quant/float_codecs.h"
#include "quant/nvfp4.h"

namespace flux2 {

namespace {

// Bytes per row of each stored array, checked against what the weight holds.
struct RowBytes {
    size_t dense = 0, codes = 0, scales = 0;
};

RowBytes row_bytes(const LinearWeight& w) {
    check(w.out_features >= 0 && w.in_features >= 0, "weight ", w.name, ": negative shape [", w.out_features, ", ",
          w.in_features, "]");
    const auto in = static_cast<size_t>(w.in_features);
    const auto out = static_cast<size_t>(w.out_features);
    RowBytes rb;
    switch (w.format) {
        case WeightFormat::dense:
            check(w.dense.dtype == DType::BF16 || w.dense.dtype == DType::F16 || w.dense.dtype == DType::F32, "weight ",
                  w.name, ": dense dtype ", dtype_name(w.dense.dtype), " is not BF16, F16 or F32");
            rb.dense = in * dtype_size(w.dense.dtype);
            check(w.dense.bytes.size() == out * rb.dense, "weight ", w.name, ": ", w.dense.bytes.size(),
                  " bytes do not hold [", out, ", ", in, "] ", dtype_name(w.dense.dtype));
            break;
        case WeightFormat::nvfp4:
            check(w.in_features % kNvfp4Block == 0, "weight ", w.name, ": NVFP4 in_features ", in,
                  " is not a multiple of ", kNvfp4Block);
            rb.codes = in / 2;
            rb.scales = in / kNvfp4Block;
            check(w.nvfp4.codes.size() == out * rb.codes, "weight ", w.name, ": ", w.nvfp4.codes.size(),
                  " NVFP4 code bytes, expected [", out, ", ", rb.codes, "]");
            check(w.nvfp4.scales.size() == out * rb.scales, "weight ", w.name, ": ", w.nvfp4.scales.size(),
                  " NVFP4 block scales, expected [", out, ", ", rb.scales, "] (canonical row-major form)");
            break;
        case WeightFormat::fp8:
            rb.codes = in;
            check(w.fp8.codes.size() == out * rb.codes, "weight ", w.name, ": ", w.fp8.codes.size(),
                  " FP8 code bytes, expected [", out, ", ", in, "]");
            check(w.fp8.row_scales.empty() || w.fp8.row_scales.size() == out, "weight ", w.name, ": ",
                  w.fp8.row_scales.size(), " FP8 row scales for ", out, " rows");
            break;
    }
    return rb;
}

std::vector<uint8_t> copy_rows(const std::vector<uint8_t>& bytes, size_t row_bytes, int64_t begin, int64_t count) {
    const auto first = bytes.begin() + static_cast<std::ptrdiff_t>(static_cast<size_t>(begin) * row_bytes);
    return std::vector<uint8_t>(first, first + static_cast<std::ptrdiff_t>(static_cast<size_t>(count) * row_bytes));
}

// Rows [half, 2*half) followed by rows [0, half).
template <typename T>
std::vector<T> swap_halves(const std::vector<T>& rows) {
    std::vector<T> out(rows.size());
    const size_t half = rows.size() / 2;
    std::copy(rows.begin() + half, rows.end(), out.begin());
    std::copy(rows.begin(), rows.begin() + half, out.begin() + half);
    return out;
}

}  // namespace

const char* weight_format_name(WeightFormat format) {
    switch (format) {
        case WeightFormat::dense:
            return "dense";
        case WeightFormat::nvfp4:
            return "nvfp4";
        case WeightFormat::fp8:
            return "fp8";
    }
    return "unknown";
}

std::string LinearWeight::format_label() const {
    if (format != WeightFormat::dense) return weight_format_name(format);
    std::string label = dtype_name(dense.dtype);
    std::transform(label.begin(), label.end(), label.begin(), [](unsigned char c) { return std::tolower(c); });
    return label;
}

std::shared_ptr<const LoraBranch> shard_lora_branch(const LoraBranch& b, const std::vector<ColumnRange>& rows,
                                                    const std::vector<ColumnRange>& columns) {
    auto out = std::make_shared<LoraBranch>();
    out->rank = b.rank;
    out->label = b.label;
    out->in_features = b.in_features;
    out->out_features = b.out_features;
    out->a = b.a;
    out->b = b.b;
    if (!rows.empty()) {
        out->b.clear();
        out->out_features = 0;
        for (const ColumnRange& r : rows) {
            check(r.begin >= 0 && r.count >= 0 && r.begin + r.count <= b.out_features, "LoRA branch ", b.label,
                  ": rows [", r.begin, ", ", r.begin + r.count, ") outside its ", b.out_features, " outputs");
            out->b.insert(out->b.end(), b.b.begin() + r.begin * b.rank, b.b.begin() + (r.begin + r.count) * b.rank);
            out->out_features += r.count;
        }
    }
    if (!columns.empty()) {
        int64_t in = 0;
        for (const ColumnRange& c : columns) {
            check(c.begin >= 0 && c.count >= 0 && c.begin + c.count <= b.in_features, "LoRA branch ", b.label,
                  ": columns [", c.begin, ", ", c.begin + c.count, ") outside its ", b.in_features, " inputs");
            in += c.count;
        }
        out->a.clear();
        out->a.reserve(static_cast<size_t>(b.rank * in));
        for (int64_t k = 0; k < b.rank; ++k)
            for (const ColumnRange& c : columns)
                out->a.insert(out->a.end(), b.a.begin() + k * b.in_features + c.begin,
                              b.a.begin() + k * b.in_features + c.begin + c.count);
        out->in_features = in;
    }
    return out;
}

int release_prepared(const LinearWeight& w) {
    int dropped = 0;
    if (w.prepared) ++dropped;
    w.prepared.reset();
    w.prepared_owner = 0;
    if (w.lora && w.lora->prepared) {
        ++dropped;
        w.lora->prepared.reset();
        w.lora->prepared_owner = 0;
    }
    return dropped;
}

std::vector<float> dequantize(const LinearWeight& w) {
    const RowBytes rb = row_bytes(w);
    const size_t n = static_cast<size_t>(w.out_features) * static_cast<size_t>(w.in_features);
    std::vector<float> out(n);
    switch (w.format) {
        case WeightFormat::dense: {
            const uint8_t* p = w.dense.bytes.data();
            if (w.dense.dtype == DType::F32) {
                std::memcpy(out.data(), p, n * sizeof(float));
            } else {
                const bool bf16 = w.dense.dtype == DType::BF16;
                for (size_t i = 0; i < n; ++i) {
                    uint16_t bits;
                    std::memcpy(&bits, p + 2 * i, 2);
                    out[i] = bf16 ? bf16_to_f32(bits) : f16_to_f32(bits);
                }
            }
            break;
        }
        case WeightFormat::nvfp4: {
            const int64_t in = w.in_features;
            const int64_t blocks = in / kNvfp4Block;
            for (int64_t r = 0; r < w.out_features; ++r) {
                const uint8_t* codes = w.nvfp4.codes.data() + r * static_cast<int64_t>(rb.codes);
                for (int64_t b = 0; b < blocks; ++b) {
                    // comfy-kitchen's order: (tensor scale * block scale) first, then times the E2M1 value.
                    const float total = w.nvfp4.weight_scale_2 * e4m3_to_f32(w.nvfp4.scales[r * blocks + b]);
                    for (int64_t k = b * kNvfp4Block; k < (b + 1) * kNvfp4Block; k += 2) {
                        const uint8_t byte = codes[k / 2];
                        out[r * in + k] = e2m1_to_f32(byte >> 4) * total;  // hi-first: even element on top
                        out[r * in + k + 1] = e2m1_to_f32(byte & 0xF) * total;
                    }
                }
            }
            break;
        }
        case WeightFormat::fp8:
            for (size_t i = 0; i < n; ++i) {
                const size_t row = i / static_cast<size_t>(w.in_features);
                out[i] = e4m3_to_f32(w.fp8.codes[i]) * (w.fp8.row_scales.empty() ? w.fp8.scale : w.fp8.row_scales[row]);
            }
            break;
    }
    return out;
}

LinearWeight slice_rows(const LinearWeight& w, int64_t begin, int64_t count, const std::string& new_name) {
    const RowBytes rb = row_bytes(w);
    check(begin >= 0 && count >= 0 && begin + count <= w.out_features, "slice_rows: rows [", begin, ", ", begin + count,
          ") out of range for weight ", w.name, " with ", w.out_features, " rows");
    LinearWeight s;
    s.name = new_name;
    s.out_features = count;
    s.in_features = w.in_features;
    s.format = w.format;
    switch (w.format) {
        case WeightFormat::dense:
            s.dense.dtype = w.dense.dtype;
            s.dense.bytes = copy_rows(w.dense.bytes, rb.dense, begin, count);
            break;
        case WeightFormat::nvfp4:
            s.nvfp4.codes = copy_rows(w.nvfp4.codes, rb.codes, begin, count);
            s.nvfp4.scales = copy_rows(w.nvfp4.scales, rb.scales, begin, count);
            s.nvfp4.weight_scale_2 = w.nvfp4.weight_scale_2;
            s.nvfp4.input_scale = w.nvfp4.input_scale;
            break;
        case WeightFormat::fp8:
            s.fp8.codes = copy_rows(w.fp8.codes, rb.codes, begin, count);
            s.fp8.scale = w.fp8.scale;
            if (!w.fp8.row_scales.empty())
                s.fp8.row_scales.assign(w.fp8.row_scales.begin() + begin, w.fp8.row_scales.begin() + begin + count);
            break;
    }
    return s;
}

LinearWeight select_columns(const LinearWeight& w, const std::vector<ColumnRange>& ranges,
                            const std::string& new_name) {
    const RowBytes rb = row_bytes(w);
    int64_t total = 0;
    for (const ColumnRange& r : ranges) {
        check(r.begin >= 0 && r.count >= 0 && r.begin + r.count <= w.in_features, "select_columns: columns [", r.begin,
              ", ", r.begin + r.count, ") out of range for weight ", w.name, " with ", w.in_features, " columns");
        check(w.format != WeightFormat::nvfp4 || (r.begin % kNvfp4Block == 0 && r.count % kNvfp4Block == 0),
              "select_columns: NVFP4 weight ", w.name, " splits only on its ", kNvfp4Block,
              "-column scale blocks, got [", r.begin, ", ", r.begin + r.count, ")");
        total += r.count;
    }
    // Each row's bytes of the ranges: rows of `row` bytes, `elems_per_unit` elements in every `unit` bytes.
    auto pick = [&](const std::vector<uint8_t>& src, size_t row, int64_t elems_per_unit, size_t unit) {
        std::vector<uint8_t> out;
        out.reserve(static_cast<size_t>(w.out_features) * static_cast<size_t>(total / elems_per_unit) * unit);
        for (int64_t n = 0; n < w.out_features; ++n)
            for (const ColumnRange& r : ranges) {
                const uint8_t* first = src.data() + n * row + r.begin / elems_per_unit * unit;
                out.insert(out.end(), first, first + r.count / elems_per_unit * unit);
            }
        return out;
    };
    LinearWeight s;
    s.name = new_name;
    s.out_features = w.out_features;
    s.in_features = total;
    s.format = w.format;
    switch (w.format) {
        case WeightFormat::dense:
            s.dense.dtype = w.dense.dtype;
            s.dense.bytes = pick(w.dense.bytes, rb.dense, 1, dtype_size(w.dense.dtype));
            break;
        case WeightFormat::nvfp4:
            s.nvfp4.codes = pick(w.nvfp4.codes, rb.codes, 2, 1);
            s.nvfp4.scales = pick(w.nvfp4.scales, rb.scales, kNvfp4Block, 1);
            s.nvfp4.weight_scale_2 = w.nvfp4.weight_scale_2;
            s.nvfp4.input_scale = w.nvfp4.input_scale;
            break;
        case WeightFormat::fp8:
            s.fp8.codes = pick(w.fp8.codes, rb.codes, 1, 1);
            s.fp8.scale = w.fp8.scale;
            s.fp8.row_scales = w.fp8.row_scales;
            break;
    }
    return s;
}

void LinearWeight::check_rows(int64_t begin, int64_t count) const {
    check(begin >= 0 && count >= 0 && begin + count <= out_features, "linear ", name, ": rows [", begin, ", ",
          begin + count, ") of a layer of ", out_features);
}

std::vector<RowPart> LinearWeight::row_parts() const {
    if (!parts.empty()) return parts;
    return {RowPart{name, 0, out_features}};
}

bool can_concat_rows(const std::vector<const LinearWeight*>& parts) {
    if (parts.empty()) return false;
    const LinearWeight& a = *parts.front();
    for (const LinearWeight* p : parts) {
        if (p->format != a.format || p->in_features != a.in_features) return false;
        switch (a.format) {
            case WeightFormat::dense:
                if (p->dense.dtype != a.dense.dtype) return false;
                break;
            case WeightFormat::nvfp4:
                if (p->nvfp4.weight_scale_2 != a.nvfp4.weight_scale_2 || p->nvfp4.input_scale != a.nvfp4.input_scale)
                    return false;
                break;
            case WeightFormat::fp8:
                // Row scales travel with their rows; per-tensor scales must be the same.
                if (p->fp8.row_scales.empty() != a.fp8.row_scales.empty()) return false;
                if (a.fp8.row_scales.empty() && p->fp8.scale != a.fp8.scale) return false;
                break;
        }
    }
    return true;
}

LinearWeight concat_rows(const std::vector<const LinearWeight*>& parts, const std::string& new_name) {
    check(can_concat_rows(parts), "concat_rows(", new_name, "): the parts differ in format, in_features or per-tensor ",
          "scale, so their rows cannot be joined exactly");
    const LinearWeight& a = *parts.front();
    LinearWeight c;
    c.name = new_name;
    c.in_features = a.in_features;
    c.format = a.format;
    c.dense.dtype = a.dense.dtype;
    c.nvfp4.weight_scale_2 = a.nvfp4.weight_scale_2;
    c.nvfp4.input_scale = a.nvfp4.input_scale;
    c.fp8.scale = a.fp8.scale;
    auto append = [](std::vector<uint8_t>& dst, const std::vector<uint8_t>& src) {
        dst.insert(dst.end(), src.begin(), src.end());
    };
    for (const LinearWeight* p : parts) {
        row_bytes(*p);  // validates the part's byte sizes
        c.parts.push_back({p->name, c.out_features, p->out_features});
        c.out_features += p->out_features;
        append(c.dense.bytes, p->dense.bytes);
        append(c.nvfp4.codes, p->nvfp4.codes);
        append(c.nvfp4.scales, p->nvfp4.scales);
        append(c.fp8.codes, p->fp8.codes);
        c.fp8.row_scales.insert(c.fp8.row_scales.end(), p->fp8.row_scales.begin(), p->fp8.row_scales.end());
    }
    return c;
}

LinearWeight swap_row_halves(const LinearWeight& w) {
    row_bytes(w);
    check(w.out_features % 2 == 0, "swap_row_halves: weight ", w.name, " has an odd number of rows (", w.out_features,
          ")");
    LinearWeight s = w;
    s.prepared.reset();
    s.prepared_owner = 0;
    switch (w.format) {
        case WeightFormat::dense:
            s.dense.bytes = swap_halves(w.dense.bytes);
            break;
        case WeightFormat::nvfp4:
            s.nvfp4.codes = swap_halves(w.nvfp4.codes);
            s.nvfp4.scales = swap_halves(w.nvfp4.scales);
            break;
        case WeightFormat::fp8:
            s.fp8.codes = swap_halves(w.fp8.codes);
            s.fp8.row_scales = swap_halves(w.fp8.row_scales);
            break;
    }
    return s;
}

}  // namespace flux2
