#pragma once
// `gloss translate`'s job: a text file (plain or .gz; "-" = standard input) in, one output
// line per input line out (n-best: up to n lines of distinct hypotheses per input line), in
// input order. Streaming: the input is read in windows of options.window lines, so memory
// does not grow with the file. A file output ("-" = `out`) is written through a temporary
// file and renamed when complete: never half a translation.
#include <iosfwd>
#include <string>

#include "gloss/decode/translator.h"
#include "gloss/translate/output.h"

namespace gloss::translate {

// Throws ConfigError / InputError (naming the file and line) for bad options or input.
void translate_file(decode::Translator& translator, const std::string& input, const std::string& output,
                    const decode::TranslateOptions& options, const OutputOptions& outputs, std::ostream& out,
                    std::ostream& log);

}  // namespace gloss::translate
