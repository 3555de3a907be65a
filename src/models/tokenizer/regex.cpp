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

// Oniguruma's \s (what Hugging Face matches with): \t \n \v \f \r, U+0085 and the Z categories. PCRE2 10.42's
// UCP \s adds U+180E (through \h), which changes how the Qwen3 and Tekken patterns cut text around it.
constexpr const char* kOnigSpaceMembers = "\\t\\n\\x{0B}\\f\\r\\x{85}\\p{Z}";

// Rewrites the escapes whose meaning differs between Oniguruma and PCRE2: \s and \S (see above) and \h / \H
// (a hex digit in Oniguruma, horizontal space in PCRE2). Everything else is copied as is.
std::string onig_to_pcre2(const std::string& pattern) {
    std::string out;
    out.reserve(pattern.size() + 64);
    int class_depth = 0;
    for (size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[++i];
            const bool in_class = class_depth > 0;
            if (e == 's') {
                out += in_class ? std::string(kOnigSpaceMembers) : str("[", kOnigSpaceMembers, "]");
            } else if (e == 'S') {
                check(!in_class, "regex \"", pattern, "\": \\S inside a character class is not supported");
                out += str("[^", kOnigSpaceMembers, "]");
            } else if (e == 'h' || e == 'H') {
                check(!(in_class && e == 'H'), "regex \"", pattern,
                      "\": \\H inside a character class is not supported");
                out += in_class ? "0-9a-fA-F" : (e == 'h' ? "[0-9a-fA-F]" : "[^0-9a-fA-F]");
            } else {
                out += c;
                out += e;
            }
            continue;
        }
        if (c == '[') {
            if (class_depth > 0 && i + 1 < pattern.size() && pattern[i + 1] == ':') {
                // A POSIX class such as [:alpha:] inside a set: copy it whole.
                const size_t end = pattern.find(":]", i + 2);
                check(end != std::string::npos, "regex \"", pattern, "\": unterminated POSIX class");
                out.append(pattern, i, end + 2 - i);
                i = end + 1;
                continue;
            }
            ++class_depth;
            out += c;
            // A ']' right after '[' or '[^' is a literal member.
            if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
            if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
            continue;
        }
        if (c == ']' && class_depth > 0) --class_depth;
        out += c;
    }
    return out;
}

}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
    const std::string translated = onig_to_pcre2(pattern);
    int err = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(), PCRE2_UTF | PCRE2_UCP,
                          &err, &offset, nullptr);
    check(code_ != nullptr, "cannot compile regex \"", pattern, "\" (as PCRE2 \"", translated, "\") at offset ", offset,
          ": ", pcre2_message(err));
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
        if (rc <= 0) fail("regex \"", pattern_, "\" failed at byte ", start, ": ", pcre2_message(rc));
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
