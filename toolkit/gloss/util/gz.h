#pragma once
// zlib's gzread, checked: a damaged .gz file, or one cut short (whose data just stops, which
// gzread alone reports as a normal end), is an InputError naming the file and the line where
// its data ends, never a silently shorter file.
#include <cstddef>
#include <string>

struct gzFile_s;

namespace gloss {

// Up to `size` bytes into buf; 0 at the real end of the data. `line`: the line being read,
// for the error.
int read_gz(gzFile_s* file, char* buf, unsigned size, const std::string& path, std::size_t line);

}  // namespace gloss
