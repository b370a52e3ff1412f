#include "gloss/eval/table.h"

#include <algorithm>

#include "gloss/util/unicode.h"

namespace gloss::eval {
namespace {

std::size_t width_of(const std::string& s) { return unicode::decode(s).size(); }

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t nl = s.find('\n', start);
    out.push_back(s.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

// Python's format(s, "^w") / ">w" / "<w".
std::string pad(const std::string& s, std::size_t width, Align align) {
  const std::size_t w = width_of(s);
  if (w >= width) return s;
  const std::size_t fill = width - w;
  switch (align) {
    case Align::kLeft:
      return s + std::string(fill, ' ');
    case Align::kRight:
      return std::string(fill, ' ') + s;
    case Align::kCenter:
      return std::string(fill / 2, ' ') + s + std::string(fill - fill / 2, ' ');
  }
  return s;
}

std::string rule(const std::vector<std::size_t>& widths, const char* left, const char* fill, const char* mid,
                 const char* right) {
  std::string out = left;
  for (std::size_t c = 0; c < widths.size(); ++c) {
    if (c) out += mid;
    for (std::size_t k = 0; k < widths[c] + 2; ++k) out += fill;
  }
  return out + right;
}

}  // namespace

std::string fancy_grid(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& columns,
                       const std::vector<Align>& aligns) {
  const std::size_t ncols = headers.size();
  const std::size_t nrows = columns.empty() ? 0 : columns[0].size();
  std::vector<std::size_t> widths(ncols);
  for (std::size_t c = 0; c < ncols; ++c) {
    widths[c] = width_of(headers[c]) + 2;  // tabulate's minimum padding around headers
    for (const auto& cell : columns[c])
      for (const auto& line : split_lines(std::string(unicode::strip(cell))))
        widths[c] = std::max(widths[c], width_of(line));
  }
  auto row_lines = [&](const std::vector<std::string>& cells) {
    std::vector<std::vector<std::string>> lines(ncols);
    std::size_t height = 1;
    for (std::size_t c = 0; c < ncols; ++c) {
      lines[c] = split_lines(std::string(unicode::strip(cells[c])));
      height = std::max(height, lines[c].size());
    }
    std::string out;
    for (std::size_t h = 0; h < height; ++h) {
      out += "│";
      for (std::size_t c = 0; c < ncols; ++c) {
        const std::string text =
            h < lines[c].size() ? pad(lines[c][h], widths[c], aligns[c]) : std::string(widths[c], ' ');
        out += " " + text + " │";
      }
      out += "\n";
    }
    return out;
  };
  std::string out = rule(widths, "╒", "═", "╤", "╕") + "\n";
  out += row_lines(headers);
  out += rule(widths, "╞", "═", "╪", "╡") + "\n";
  for (std::size_t r = 0; r < nrows; ++r) {
    if (r) out += rule(widths, "├", "─", "┼", "┤") + "\n";
    std::vector<std::string> cells(ncols);
    for (std::size_t c = 0; c < ncols; ++c) cells[c] = columns[c][r];
    out += row_lines(cells);
  }
  out += rule(widths, "╘", "═", "╧", "╛");
  return out;
}

}  // namespace gloss::eval
