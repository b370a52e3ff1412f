#pragma once
// Files that are either complete or absent: written to a temporary file beside the target,
// flushed, then renamed over it. A crash never leaves a half-written file.
#include <string>
#include <string_view>

namespace gloss {

void atomic_write_file(const std::string& path, std::string_view bytes);
std::string read_file(const std::string& path);  // InputError if unreadable

// InputError unless `path` can be opened as a file ("-" = standard input is accepted):
// a directory or a missing file gets a one-line error naming it.
void require_file(const std::string& path);

}  // namespace gloss
