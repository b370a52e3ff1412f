#pragma once
// Translations as text lines, the formats of `gloss translate` (as Marian and Moses write them):
//   1-best      "text" [" ||| alignment"] [" ||| WordScores= s1 s2 ..."]
//   n-best      "id ||| text ||| score" [the same extras], id counting input lines from 0
// alignment: "hard" (src-tgt pairs of the most attended source subword) or "soft" (each
// target subword's weights over the source subwords, comma-separated).
#include <cstddef>
#include <string>
#include <vector>

#include "gloss/decode/translator.h"

namespace gloss::translate {

struct OutputOptions {
  std::string alignment;       // "", "hard" or "soft"
  bool word_scores = false;    // append each output word's log-probability
  std::string attention_path;  // draw the attention of line attention_line here (.svg or .png)
  std::size_t attention_line = 1;
  std::string nbest_output;  // n_best > 1: the n-best lines go here and the output gets the 1-best
  bool progress = false;     // progress lines on stderr (automatic on a terminal)
};
// Throws ConfigError naming the `gloss translate` option of a bad value.
void validate(const OutputOptions& options);
// What the search must keep for these outputs.
decode::TranslateOptions with_outputs(decode::TranslateOptions options, const OutputOptions& outputs);

// The 1-best line of a translation.
std::string best_line(const decode::Translation& t, const decode::Translator& translator, const OutputOptions& o);
// Its n-best lines; `id` is the input line's number counted from 0.
std::vector<std::string> nbest_lines(const decode::Translation& t, std::size_t id, const decode::Translator& translator,
                                     const OutputOptions& o);

// The attention heat map of a translation's best hypothesis, written to o.attention_path.
void write_attention_map(const decode::Translation& t, const decode::Translator& translator, const OutputOptions& o);

}  // namespace gloss::translate
