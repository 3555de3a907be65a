// `flux2 inspect PATH`: what a checkpoint holds, read from headers only (no tensor byte is read).
#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>

#include "cli/commands.h"
#include "core/error.h"
#include "io/checkpoint.h"
#include "models/lora/lora_adapter.h"

namespace flux2::cli {

namespace {

struct InspectOptions {
    std::string path;
    bool summary = false;
    bool json = false;
    size_t value_chars = 100;
};

std::string format_bytes(uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes);
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < std::size(units)) {
        v /= 1024.0;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
    return buf;
}

// Metadata values can be long JSON documents with line breaks; show one line of at most `max_chars`.
std::string abbreviate(const std::string& value, size_t max_chars) {
    std::string line;
    for (char c : value) line += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    if (max_chars == 0 || line.size() <= max_chars) return line;
    return str(line.substr(0, max_chars), "... (", value.size(), " chars)");
}

void print_metadata(const Checkpoint& ckpt, size_t value_chars) {
    const auto& metadata = ckpt.metadata();
    std::printf("metadata: %zu key%s\n", metadata.size(), metadata.size() == 1 ? "" : "s");
    size_t width = 0;
    for (const auto& [key, value] : metadata) width = std::max(width, key.size());
    for (const auto& [key, value] : metadata) {
        std::printf("  %-*s  %s\n", static_cast<int>(width), key.c_str(), abbreviate(value, value_chars).c_str());
    }
}

void print_totals(const Checkpoint& ckpt) {
    struct Total {
        size_t count = 0;
        uint64_t bytes = 0;
    };
    Total all;
    std::map<std::string, Total> by_dtype;
    for (const auto& file : ckpt.files()) {
        for (const TensorInfo& t : file->tensors()) {
            Total& d = by_dtype[dtype_name(t.dtype)];
            ++d.count;
            d.bytes += t.nbytes;
            ++all.count;
            all.bytes += t.nbytes;
        }
    }
    std::printf("tensors: %zu, %s of data (%llu bytes)\n", all.count, format_bytes(all.bytes).c_str(),
                static_cast<unsigned long long>(all.bytes));
    for (const auto& [dtype, d] : by_dtype) {
        std::printf("  %-8s %6zu tensors  %s\n", dtype.c_str(), d.count, format_bytes(d.bytes).c_str());
    }
}

// One column of the tensor table. Further columns (e.g. a layer's quantization format) are added by pushing
// another entry in tensor_columns().
struct Column {
    std::string title;
    std::function<std::string(const TensorInfo&)> cell;
};

std::vector<Column> tensor_columns(const Checkpoint& ckpt) {
    std::vector<Column> columns{
        {"name", [](const TensorInfo& t) { return t.name; }},
        {"dtype", [](const TensorInfo& t) { return std::string(dtype_name(t.dtype)); }},
        {"shape", [](const TensorInfo& t) { return shape_str(t.shape); }},
        {"bytes", [](const TensorInfo& t) { return std::to_string(t.nbytes); }},
    };
    if (ckpt.files().size() > 1) {
        columns.push_back({"file", [](const TensorInfo& t) { return t.file; }});
    }
    return columns;
}

void print_tensor_table(const Checkpoint& ckpt) {
    const std::vector<Column> columns = tensor_columns(ckpt);
    std::vector<std::vector<std::string>> rows;
    rows.emplace_back();
    for (const Column& c : columns) rows.back().push_back(c.title);
    for (const std::string& name : ckpt.names()) {
        const TensorInfo& t = ckpt.get(name);
        rows.emplace_back();
        for (const Column& c : columns) rows.back().push_back(c.cell(t));
    }
    std::vector<size_t> widths(columns.size(), 0);
    for (const auto& row : rows) {
        for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
    }
    for (const auto& row : rows) {
        std::string line = " ";
        for (size_t i = 0; i < row.size(); ++i) {
            line += ' ';
            line += row[i];
            // No padding after the last column, so lines carry no trailing spaces.
            if (i + 1 < row.size()) line.append(widths[i] - row[i].size(), ' ');
        }
        std::printf("%s\n", line.c_str());
    }
}

}  // namespace

void register_inspect(CLI::App& app) {
    auto* cmd =
        app.add_subcommand("inspect", "Show what a safetensors checkpoint or LoRA holds (checkpoints: headers only)");
    auto opts = std::make_shared<InspectOptions>();
    cmd->add_option("path", opts->path, "a .safetensors file, a *.safetensors.index.json or a folder")->required();
    cmd->add_flag("--summary", opts->summary, "metadata and totals only, no tensor list");
    cmd->add_flag("--json", opts->json,
                  "print one JSON document (files, metadata, tensors, architecture, per-layer formats) instead");
    cmd->add_option("--value-chars", opts->value_chars, "cut metadata values after this many characters (0: never)")
        ->capture_default_str();
    cmd->callback([opts] {
        if (opts->json) {
            std::printf("%s\n", inspect_json(opts->path, /*tensors=*/!opts->summary).c_str());
            return;
        }
        Checkpoint ckpt = Checkpoint::open(opts->path, /*header_only=*/true);
        std::printf("%s\n", ckpt.describe().c_str());
        for (const auto& file : ckpt.files()) {
            const size_t n = file->tensors().size();
            std::printf("  file %s: %s, %zu tensor%s\n", file->path().c_str(), format_bytes(file->file_size()).c_str(),
                        n, n == 1 ? "" : "s");
        }
        print_metadata(ckpt, opts->value_chars);
        print_totals(ckpt);
        if (!opts->summary) print_tensor_table(ckpt);
        if (has_lora_keys(ckpt.names())) {
            print_lora(opts->path, /*table=*/!opts->summary);
        } else {
            print_transformer_quant(opts->path, /*table=*/!opts->summary);
        }
    });
}

}  // namespace flux2::cli
