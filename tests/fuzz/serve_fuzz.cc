// libFuzzer harness: the body of gloss serve's POST /translate (any bytes). A body is either a
// request within the limits or an ApiError with status 400 or 413, whose JSON answer can
// always be written.
#include <string>

#include "fuzz_input.h"
#include "gloss/serve/api.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  gloss::serve::ApiLimits limits;
  limits.max_sentences = 8;
  limits.max_sentence_bytes = 64;
  try {
    const auto r = gloss::serve::parse_request(std::string(gloss::fuzz::as_text(data, size)), limits);
    if (r.lines.size() > limits.max_sentences || r.beam_size < 1 || r.beam_size > limits.max_beam || r.n_best < 1 ||
        r.n_best > r.beam_size)
      __builtin_trap();
    for (const auto& line : r.lines)
      if (line.size() > limits.max_sentence_bytes) __builtin_trap();
  } catch (const gloss::serve::ApiError& e) {
    if (e.status() != 400 && e.status() != 413) __builtin_trap();
    if (gloss::serve::error_json(e.what()).empty()) __builtin_trap();
  }
  return 0;
}
