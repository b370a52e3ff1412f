#pragma once
// tabulate's "fancy_grid" table, as sacreBLEU prints multi-system results.
#include <string>
#include <vector>

namespace gloss::eval {

enum class Align { kLeft, kRight, kCenter };

// columns[c][r] is the cell of row r in column c; cells may span several lines ('\n').
std::string fancy_grid(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& columns,
                       const std::vector<Align>& aligns);

}  // namespace gloss::eval
