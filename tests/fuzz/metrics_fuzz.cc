// libFuzzer harness: metrics.jsonl lines as gloss plot and gloss run's report read them, and
// the curves drawn from them.
#include "fuzz_input.h"
#include "gloss/report/plot.h"
#include "gloss/train/metrics.h"
#include "gloss/util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto path = gloss::fuzz::input_file("metrics.jsonl", gloss::fuzz::as_text(data, size));
  try {
    const auto rows = gloss::train::read_metrics(path);
    const std::string svg = gloss::report::training_curves_svg(rows, "fuzz");
    if (svg.size() > (std::size_t{1} << 24)) __builtin_trap();  // bounded output
  } catch (const gloss::UserError&) {
  }
  return 0;
}
