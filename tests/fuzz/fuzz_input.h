#pragma once
// Shared by the libFuzzer harnesses: Gloss's readers take paths, so each input is written to a
// file of this process first. A gloss::UserError (a one-line error for the user) is the
// expected answer to a bad input; anything else escaping a harness is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>

namespace gloss::fuzz {

// Writes `bytes` to /tmp/gloss-fuzz-<pid>-<name> (overwritten by every input) and returns its path.
inline std::string input_file(const std::string& name, std::string_view bytes) {
  const std::string path = "/tmp/gloss-fuzz-" + std::to_string(::getpid()) + "-" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace gloss::fuzz
