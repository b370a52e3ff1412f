// libFuzzer harness: lexical shortlist files, loaded for a model of 5000 x 6000 subwords.
#include "fuzz_input.h"
#include "gloss/decode/shortlist.h"
#include "gloss/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = gloss::fuzz::input_file("shortlist.txt", gloss::fuzz::as_text(data, size));
  try {
    const auto s = gloss::decode::Shortlist::load(path, 5000, 6000);
    s.for_sentence({0, 4, 17, 4999, 5000, -1});
  } catch (const gloss::UserError&) {
  }
  return 0;
}
