#pragma once
// `gloss eval`: sacreBLEU 2.6.0's command line behaviour, with identical output.
#include <iosfwd>
#include <string>
#include <vector>

#include "gloss/eval/bleu.h"
#include "gloss/eval/chrf.h"
#include "gloss/eval/tokenizers.h"

namespace gloss::eval {

struct EvalOptions {
  std::vector<std::string> references;       // reference files (plain or .gz)
  std::vector<std::string> inputs;           // -i: system outputs; none = standard input
  std::vector<std::string> metrics{"bleu"};  // -m: bleu, chrf, ter
  int num_refs = 1;                          // -nr: tab-separated references in one file
  BleuOptions bleu;
  ChrfOptions chrf;
  TercomOptions ter;
  bool sentence_level = false;   // -sl
  std::string format = "text";   // -f text|json
  bool score_only = false;       // -b
  int width = 1;                 // -w
  bool short_signature = false;  // -sh
  bool confidence = false;       // -ci: bootstrap confidence interval for one system
  int confidence_n = 1000;       // -cin
  bool paired_bs = false;        // --paired-bs
  int paired_bs_n = 1000;        // --paired-bs-n
  bool paired_ar = false;        // --paired-ar
  int paired_ar_n = 10000;       // --paired-ar-n
  bool paired_ar_ci = false;     // --paired-ar-ci
  int threads = 2;               // --threads: segments scored in parallel (results do not change)
};

// Throws ConfigError naming the option when a value or a combination is invalid.
void validate(const EvalOptions& options);

// Reads the files (or `in`), scores, and writes exactly what sacreBLEU prints to `out`.
// Throws UserError (InputError, ConfigError) on bad input; writes nothing then.
void run_eval(const EvalOptions& options, std::istream& in, std::ostream& out);

}  // namespace gloss::eval
