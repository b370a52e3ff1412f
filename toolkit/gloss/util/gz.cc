#include "gloss/util/gz.h"

#include <zlib.h>

#include "gloss/util/error.h"

namespace gloss {

int read_gz(gzFile_s* file, char* buf, unsigned size, const std::string& path, std::size_t line) {
  const int n = gzread(file, buf, size);
  if (n > 0) return n;  // the data there is; a cut stream reports itself on the next call
  int code = Z_OK;
  const char* message = gzerror(file, &code);
  if (n < 0 || code == Z_BUF_ERROR)
    throw InputError(path, line,
                     code == Z_BUF_ERROR
                         ? "the compressed data ends here, cut short (a truncated .gz file?); "
                           "download or copy it again"
                         : std::string("not valid gzip data (") + message + "); decompress it or fetch it again");
  return n;
}

}  // namespace gloss
