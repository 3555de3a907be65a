#pragma once
// Plain-text tables for `inspect`: columns padded to their widest cell, two spaces of indent.
#include <string>
#include <vector>

namespace flux2::cli {

// rows[0] is the header; every row has the same number of cells.
void print_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace flux2::cli
