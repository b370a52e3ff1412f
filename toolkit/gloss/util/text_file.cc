#include "gloss/util/text_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "gloss/util/atomic_file.h"
#include "gloss/util/error.h"
#include "gloss/util/gz.h"
#include "gloss/util/unicode.h"

namespace gloss {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw InputError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  std::string data;
  char buf[1 << 16];
  for (;;) {
    int n;
    try {
      n = read_gz(f, buf, sizeof buf, path, 0);
    } catch (...) {
      gzclose(f);
      throw;
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  gzclose(f);
  return data;
}

}  // namespace

std::vector<std::string> split_lines(const std::string& data, const std::string& name, LineBreaks breaks) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  const std::size_t n = data.size();
  while (start < n) {
    std::size_t end;
    std::size_t next;
    if (breaks == LineBreaks::kNewline) {
      end = data.find('\n', start);
      if (end == std::string::npos) end = n;
      next = end + 1;
    } else {
      end = data.find_first_of("\r\n", start);
      if (end == std::string::npos) {
        end = n;
        next = n;
      } else {
        next = end + 1;
        if (data[end] == '\r' && next < n && data[next] == '\n') ++next;
      }
    }
    lines.emplace_back(data, start, end - start);
    const std::string& line = lines.back();
    if (const auto bad = unicode::find_invalid_utf8(line); bad != std::string_view::npos) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned char>(line[bad]));
      throw InputError(name, lines.size(),
                       "invalid UTF-8 (byte " + std::string(hex) + " at column " + std::to_string(bad + 1) +
                           "); convert the file to UTF-8, e.g. iconv -f latin1 -t utf-8");
    }
    start = next;
  }
  return lines;
}

std::vector<std::string> read_lines(std::istream& in, const std::string& name, LineBreaks breaks) {
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InputError(name, 0, "read error");
  return split_lines(data, name, breaks);
}

std::vector<std::string> read_lines(const std::string& path, LineBreaks breaks) {
  require_file(path);
  if (ends_with(path, ".gz")) return split_lines(read_gzip(path), path, breaks);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, std::string("cannot open: ") + std::strerror(errno));
  return read_lines(in, path, breaks);
}

}  // namespace gloss
