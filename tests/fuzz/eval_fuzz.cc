// libFuzzer harness: gloss eval's inputs. The input is split at its first NUL byte into a
// reference file and a hypothesis file, scored with BLEU, chrF and TER as sacreBLEU would.
#include <sstream>

#include "fuzz_input.h"
#include "gloss/eval/evaluator.h"
#include "gloss/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = gloss::fuzz::as_text(data, size);
  const auto cut = std::min(text.find('\0'), text.size());
  gloss::eval::EvalOptions o;
  o.references = {gloss::fuzz::input_file("ref.txt", text.substr(0, cut))};
  o.inputs = {gloss::fuzz::input_file("hyp.txt", cut < text.size() ? text.substr(cut + 1) : std::string_view())};
  o.metrics = {"bleu", "chrf", "ter"};
  o.threads = 1;
  std::istringstream no_input;
  std::ostringstream out;
  try {
    gloss::eval::run_eval(o, no_input, out);
  } catch (const gloss::UserError&) {
  }
  return 0;
}
