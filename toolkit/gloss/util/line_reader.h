#pragma once
// Streaming reader of a text corpus, one line at a time, in constant memory: plain or
// gzip-compressed files (detected from the content), a UTF-8 byte order mark at the start and
// Windows line ends are removed, and invalid UTF-8 is an InputError naming file and line.
#include <cstddef>
#include <memory>
#include <string>

#include "gloss/util/gz.h"

namespace gloss {

class LineReader {
 public:
  // "-" reads standard input.
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Longest line read: a longer one (a binary file, /dev/zero) is an InputError, not a line
  // grown without bound.
  static constexpr std::size_t kMaxLineBytes = std::size_t{16} << 20;

  // Reads the next line into `line` (without "\n" or "\r\n"); false at the end of the file.
  // Standard input from a pipe or terminal is read as it arrives (gz.h, InputBytes).
  bool next(std::string& line);
  // Whether next() returns without waiting for input (files: always): a writer that waits
  // for the output of the lines so far should get it flushed first.
  bool ready() const;
  // Number of the last line returned (1-based); 0 before the first.
  std::size_t line_number() const { return line_number_; }
  const std::string& path() const { return path_; }

 private:
  bool fill();
  std::string path_;
  std::unique_ptr<InputBytes> input_;
  std::string buffer_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  std::size_t line_number_ = 0;
};

// Counts the lines of a file (as LineReader sees them).
std::size_t count_lines(const std::string& path);

}  // namespace gloss
