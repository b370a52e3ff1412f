#pragma once
// Shared by the libFuzzer harnesses: Gloss's readers take paths, so each input is written to a
// file of this process first. A gloss::UserError (a one-line error for the user) is the
// expected answer to a bad input; anything else escaping a harness is a finding.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <string_view>

namespace gloss::fuzz {

// The input files of this process, removed when it exits (libFuzzer ends with exit()), so
// that runs do not pile files up in /tmp.
struct InputFiles {
  std::set<std::string> paths;
  ~InputFiles() {
    for (const auto& p : paths) std::remove(p.c_str());
  }
};

// Writes `bytes` to /tmp/gloss-fuzz-<pid>-<name> (overwritten by every input) and returns its path.
inline std::string input_file(const std::string& name, std::string_view bytes) {
  static InputFiles files;
  const std::string path = "/tmp/gloss-fuzz-" + std::to_string(::getpid()) + "-" + name;
  files.paths.insert(path);
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path;
}

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

}  // namespace gloss::fuzz
