#pragma once
// Reading whole text files as lines: plain or gzip-compressed (by the .gz suffix), strict UTF-8.
#include <istream>
#include <string>
#include <vector>

namespace gloss {

enum class LineBreaks {
  kNewline,    // only '\n' ends a line ('\r' stays in the line), as Python's open(newline="\n")
  kUniversal,  // '\n', '\r\n' and '\r' end a line, as Python's default text mode (stdin)
};

// Reads every line of `path` (without its line break). A missing final line break is fine.
// Throws InputError naming the file (and the line, for invalid UTF-8) on any problem.
std::vector<std::string> read_lines(const std::string& path, LineBreaks breaks = LineBreaks::kNewline);

// The same for an already open stream; `name` is used in error messages.
std::vector<std::string> read_lines(std::istream& in, const std::string& name,
                                    LineBreaks breaks = LineBreaks::kNewline);

// Splits a buffer into lines and validates UTF-8, reporting errors against `name`.
std::vector<std::string> split_lines(const std::string& data, const std::string& name, LineBreaks breaks);

}  // namespace gloss
