#pragma once
// Files that are either complete or absent: written to a temporary file beside the target,
// flushed, then renamed over it. A crash never leaves a half-written file.
#include <string>
#include <string_view>

namespace gloss {

void atomic_write_file(const std::string& path, std::string_view bytes);
std::string read_file(const std::string& path);  // InputError if unreadable

}  // namespace gloss
