// libFuzzer harness: the line reader every corpus, reference and translation input goes
// through, on plain text and on .gz data (the input is read as both).
#include "fuzz_input.h"
#include "gloss/util/error.h"
#include "gloss/util/line_reader.h"

namespace {

void read_all(const std::string& path) {
  try {
    gloss::LineReader reader(path);
    std::string line;
    std::size_t n = 0;
    while (reader.next(line)) ++n;
    if (n != reader.line_number()) __builtin_trap();  // every line counted once
  } catch (const gloss::UserError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = gloss::fuzz::as_text(data, size);
  read_all(gloss::fuzz::input_file("lines.txt", text));
  read_all(gloss::fuzz::input_file("lines.gz", text));
  return 0;
}
