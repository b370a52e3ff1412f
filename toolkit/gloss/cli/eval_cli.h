#pragma once
// `gloss eval` arguments, spelled as sacreBLEU 2.6.0 spells them (including its multi-letter
// single-dash aliases such as -lc, -tok, -sh), parsed with Boost.Program_options.
#include <string>
#include <vector>

#include "gloss/eval/evaluator.h"

namespace gloss::cli {

struct EvalCommand {
  eval::EvalOptions options;
  bool help = false;
  bool quiet = false;
};

// Throws ConfigError with a one-line message naming the offending option.
EvalCommand parse_eval_args(const std::vector<std::string>& args);
std::string eval_usage();

}  // namespace gloss::cli
