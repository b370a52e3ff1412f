#include "gloss/util/line_reader.h"

#include <cstdio>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/unicode.h"

namespace gloss {

LineReader::LineReader(const std::string& path) : path_(path) {
  require_file(path);  // a missing file, a folder: named before zlib is asked
  input_ = std::make_unique<InputBytes>(path);
}

LineReader::~LineReader() = default;

bool LineReader::fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    buffer_.erase(0, pos_);
    pos_ = 0;
  }
  char chunk[1 << 16];
  const int n = input_->read(chunk, sizeof chunk, line_number_ + 1);
  if (n == 0) {
    eof_ = true;
    return false;
  }
  buffer_.append(chunk, static_cast<std::size_t>(n));
  return true;
}

bool LineReader::ready() const { return eof_ || buffer_.find('\n', pos_) != std::string::npos || input_->ready(); }

bool LineReader::next(std::string& line) {
  for (std::size_t scanned = 0;;) {  // bytes of this line already searched for its end
    const std::size_t nl = buffer_.find('\n', pos_ + scanned);
    if (nl != std::string::npos) {
      line.assign(buffer_, pos_, nl - pos_);
      pos_ = nl + 1;
      break;
    }
    scanned = buffer_.size() - pos_;
    if (scanned > kMaxLineBytes)  // /dev/zero, a binary file: never a line to hold in memory
      throw InputError(path_, line_number_ + 1,
                       "a line longer than " + std::to_string(kMaxLineBytes >> 20) + " MiB; is this a text file?");
    if (!fill()) {
      if (pos_ >= buffer_.size()) return false;
      line.assign(buffer_, pos_, std::string::npos);  // a last line without a line break
      pos_ = buffer_.size();
      break;
    }
  }
  ++line_number_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line_number_ == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
  if (const auto bad = unicode::find_invalid_utf8(line); bad != std::string_view::npos) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(line[bad]));
    throw InputError(path_, line_number_,
                     "invalid UTF-8 (byte " + std::string(hex) + " at column " + std::to_string(bad + 1) +
                         "); convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8");
  }
  return true;
}

std::size_t count_lines(const std::string& path) {
  LineReader reader(path);
  std::string line;
  while (reader.next(line)) {
  }
  return reader.line_number();
}

}  // namespace gloss
