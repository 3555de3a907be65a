#include "models/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "core/error.h"
#include "models/tokenizer/utf8.h"

namespace flux2 {

namespace {

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(code, buf, sizeof(buf));
    return reinterpret_cast<const char*>(buf);
}

struct MatchDataDeleter {
    void operator()(pcre2_match_data* p) const { pcre2_match_data_free(p); }
};
struct MatchContextDeleter {
    void operator()(pcre2_match_context* p) const { pcre2_match_context_free(p); }
};
struct JitStackDeleter {
    void operator()(pcre2_jit_stack* p) const { pcre2_jit_stack_free(p); }
};

}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                          &offset, nullptr);
    check(code_ != nullptr, "cannot compile regex \"", pattern, "\" at offset ", offset, ": ", pcre2_message(err));
    // Without JIT, pcre2_match interprets the pattern: slower but the same matches, so a failure here is not fatal.
    pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE);
}

Regex::~Regex() { pcre2_code_free(code_); }

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& matches) const {
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(pcre2_match_data_create_from_pattern(code_, nullptr));
    check(md != nullptr, "out of memory matching regex \"", pattern_, "\"");
    std::unique_ptr<pcre2_match_context, MatchContextDeleter> ctx;
    std::unique_ptr<pcre2_jit_stack, JitStackDeleter> stack;
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t start = 0;
    while (start < text.size()) {
        int rc = pcre2_match(code_, subject, text.size(), start, PCRE2_NO_UTF_CHECK, md.get(), ctx.get());
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !stack) {
            // The default 32 KiB JIT stack can run out on very long runs of one character class; retry with more.
            stack.reset(pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, nullptr));
            ctx.reset(pcre2_match_context_create(nullptr));
            check(stack && ctx, "out of memory matching regex \"", pattern_, "\"");
            pcre2_jit_stack_assign(ctx.get(), nullptr, stack.get());
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        check(rc > 0, "regex \"", pattern_, "\" failed at byte ", start, ": ", pcre2_message(rc));
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
        const size_t b = ov[0], e = ov[1];
        if (e > b) {
            matches.emplace_back(b, e);
            start = e;
        } else if (b < text.size()) {
            // An empty match produces no piece; step over one character and search on.
            start = b + utf8_length(static_cast<unsigned char>(text[b]));
        } else {
            break;
        }
    }
}

}  // namespace flux2
