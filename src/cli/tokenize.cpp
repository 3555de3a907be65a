// `flux2 tokenize`: the token ids of a prompt, optionally templated and padded as a FLUX.2 pipeline does.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/prompt_input.h"
#include "core/error.h"
#include "core/log.h"
#include "models/tokenizer/chat_template.h"
#include "models/tokenizer/tokenizer.h"

namespace flux2::cli {

namespace {

struct TokenizeOptions {
    std::string tokenizer;
    std::string prompt, prompt_file;
    std::string template_name = "none";
    int max_length = 0;
    bool show_mask = false;
};

void print_ids(const std::vector<int32_t>& ids) {
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
}

// One prompt: its ids on one line (and with --mask, the attention mask on the next).
void tokenize_one(const Tokenizer& tok, const TokenizeOptions& opt, TemplateKind kind, const std::string& prompt) {
    if (opt.max_length == 0) {
        const auto ids = tok.encode(apply_chat_template(tok, kind, prompt), kind == TemplateKind::none);
        log_debug(ids.size(), " tokens");
        print_ids(ids);
        return;
    }
    std::vector<int32_t> mask;
    const auto ids = encode_prompt_ids(tok, kind, prompt, opt.max_length, &mask);
    int64_t real = 0;
    for (int32_t m : mask) real += m;
    log_debug(ids.size(), " ids, ", real, " of them real, padding on the ", side_name(tok.config().padding_side));
    print_ids(ids);
    if (opt.show_mask) print_ids(mask);
}

}  // namespace

void register_tokenize(CLI::App& app) {
    auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a prompt (Hugging Face tokenizer.json)");
    auto opt = std::make_shared<TokenizeOptions>();
    cmd->add_option("--tokenizer", opt->tokenizer, "tokenizer folder, tokenizer.json or tokenizer.json.gz")->required();
    auto* prompt = cmd->add_option("--prompt", opt->prompt, "the text to tokenize (UTF-8)");
    cmd->add_option("--prompt-file", opt->prompt_file,
                    "tokenize each line of this file (- for stdin); one line of ids per input line")
        ->excludes(prompt);
    cmd->add_option("--template", opt->template_name, "prompt template: qwen3 (klein), mistral (dev) or none")
        ->check(CLI::IsMember({"none", "qwen3", "mistral"}))
        ->capture_default_str();
    cmd->add_option("--max-length", opt->max_length,
                    "truncate and pad to exactly N ids (the pipelines use 512); 0 = neither")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    cmd->add_flag("--mask", opt->show_mask, "also print the attention mask (with --max-length) on a second line");
    cmd->callback([opt, prompt] {
        check(prompt->count() > 0 || !opt->prompt_file.empty(), "give --prompt TEXT or --prompt-file FILE");
        // Read the prompts first: a missing file is reported before the tokenizer is loaded.
        const std::vector<std::string> prompts = opt->prompt_file.empty()
                                                     ? std::vector<std::string>{opt->prompt}
                                                     : prompt_lines(read_prompt_source(opt->prompt_file));
        const Tokenizer tok = Tokenizer::load(opt->tokenizer);
        log_info(tok.describe());
        const TemplateKind kind = parse_template_kind(opt->template_name);
        for (const std::string& p : prompts) tokenize_one(tok, *opt, kind, p);
        log_info(prompts.size(), prompts.size() == 1 ? " prompt" : " prompts", " tokenized");
    });
}

}  // namespace flux2::cli
