#include "cli/prompt_input.h"

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>

#include "core/error.h"

namespace flux2::cli {

namespace {
constexpr size_t kMaxPromptFileBytes = size_t{256} << 20;

std::string read_all(std::istream& in, const std::string& name) {
    std::string text;
    char buf[1 << 16];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        text.append(buf, static_cast<size_t>(in.gcount()));
        check(text.size() <= kMaxPromptFileBytes, name, ": more than ", kMaxPromptFileBytes, " bytes of prompts");
    }
    check(!in.bad(), name, ": read error");
    return text;
}
}  // namespace

std::string read_prompt_source(const std::string& path) {
    if (path == "-") return read_all(std::cin, "stdin (--prompt-file -)");
    std::ifstream in(path, std::ios::binary);
    check(in.good(), "--prompt-file ", path, ": cannot open");
    return read_all(in, path);
}

std::vector<std::string> prompt_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t begin = 0;
    while (begin < text.size()) {
        size_t end = text.find('\n', begin);
        const size_t next = end == std::string::npos ? text.size() : end + 1;
        if (end == std::string::npos) end = text.size();
        if (end > begin && text[end - 1] == '\r') --end;
        lines.push_back(text.substr(begin, end - begin));
        begin = next;
    }
    return lines;
}

std::string single_prompt(std::string text) {
    if (!text.empty() && text.back() == '\n') text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
    return text;
}

}  // namespace flux2::cli
