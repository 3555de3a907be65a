#pragma once
// Prompts read from a file or stdin (`--prompt-file FILE`, `-` for stdin), for commands that would otherwise take
// them only on the command line (no NUL bytes there, a length limit, and one process per prompt).
#include <string>
#include <vector>

namespace flux2::cli {

// The whole of `path` ("-": stdin), at most 256 MiB; errors name the file.
std::string read_prompt_source(const std::string& path);

// One prompt per line: lines end at "\n" (a "\r" before it is dropped too); a final line without "\n" counts, an
// empty text has no lines.
std::vector<std::string> prompt_lines(const std::string& text);

// The text as one prompt: one trailing line break ("\n" or "\r\n") is dropped, as editors add it.
std::string single_prompt(std::string text);

}  // namespace flux2::cli
