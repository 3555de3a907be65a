#pragma once
// Subcommand registration. Each command file defines one register_* function; register_all calls them all.
#include <CLI/CLI.hpp>

namespace flux2::cli {

void register_all(CLI::App& app);

void register_inspect(CLI::App& app);
// Part of `inspect`: the checkpoint as a FLUX.2 transformer, each linear's resolved format and its source.
void print_transformer_quant(const std::string& path, bool table);
// `inspect --json`: files, metadata, dtype totals, tensors (when `tensors`), and the transformer part: inferred
// architecture, quantization, bytes per format and one entry per linear layer (when `tensors`).
std::string inspect_json(const std::string& path, bool tensors);
// Part of `inspect` for LoRA files: format, ranks, alphas, layers and the models it fits.
void print_lora(const std::string& path, bool table);
void register_forward(CLI::App& app);
void register_bench(CLI::App& app);
void register_generate(CLI::App& app);
void register_encode_prompt(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_serve(CLI::App& app);
// `flux2 eval`: the demo model's prompt-following score (src/cli/eval.cpp).
void register_eval(CLI::App& app);

}  // namespace flux2::cli
