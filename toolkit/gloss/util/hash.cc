#include "gloss/util/hash.h"

#include <cstdio>
#include <fstream>
#include <vector>

namespace gloss {

std::string hex16(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string fingerprint(std::string_view bytes) { return hex16(fnv1a(kStampSeed, bytes)); }

std::string file_fingerprint(const std::string& path) {
  if (path.empty()) return "-";
  std::ifstream in(path, std::ios::binary);
  std::uint64_t h = kStampSeed;
  std::vector<char> buf(1 << 20);
  while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0)
    h = fnv1a(h, std::string_view(buf.data(), static_cast<std::size_t>(in.gcount())));
  return hex16(h);
}

}  // namespace gloss
