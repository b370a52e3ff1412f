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

// `--shard K/N`: the K-th of N contiguous line ranges of the input (1 <= K <= N), lines
// (K-1)*L/N + 1 .. K*L/N of its L lines (integer division), as `split -n l/K/N` numbers them.
// The outputs of shards 1..N, concatenated in order, are byte for byte the whole file's
// output: n-best ids, warnings and --attention-line keep the whole file's line numbers.
struct Shard {
  std::size_t index = 1, count = 1;
  bool whole() const { return count == 1; }
};
// "K/N" -> Shard; ConfigError naming --shard unless 1 <= K <= N <= 100000.
Shard parse_shard(const std::string& text);

// Under mpirun each rank translates its shard into shard_path(output, its shard), and rank 0
// merges them: merge_shards concatenates the `count` shard files of `output` in order into
// `output` (a temporary file renamed when complete) and removes them.
std::string shard_path(const std::string& output, const Shard& shard);
void merge_shards(const std::string& output, std::size_t count);

// Throws ConfigError / InputError (naming the file and line) for bad options or input. A
// shard of the input needs a file that can be read twice (its lines are counted first).
void translate_file(decode::Translator& translator, const std::string& input, const std::string& output,
                    const decode::TranslateOptions& options, const OutputOptions& outputs, std::ostream& out,
                    std::ostream& log, const Shard& shard = {});

}  // namespace gloss::translate
