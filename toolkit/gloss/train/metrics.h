#pragma once
// The validation log of a training run, <workdir>/metrics.jsonl: one JSON object per
// validation, written and read here (gloss run's report, gloss plot).
#include <iosfwd>
#include <string>
#include <vector>

namespace gloss::train {

struct MetricsRow {
  long long step = 0;
  int epoch = 0;
  double train_loss = 0;  // per target token since the previous validation
  double valid_ce = 0, valid_ppl = 0, valid_bleu = 0, valid_chrf = 0;
  double lr = 0, elapsed_s = 0;
};

// One line: {"step": ..., "epoch": ..., ...} (6 significant digits) and a newline, flushed.
void write_metrics_row(std::ostream& out, const MetricsRow& row);

// Reads metrics.jsonl; a line that is not such an object is an InputError naming file:line.
// When a step appears more than once (a run restarted), the later line wins. Rows by step.
std::vector<MetricsRow> read_metrics(const std::string& path);

// Keeps only the lines of steps up to `step` (rewritten atomically): a resumed training repeats
// the validations after its checkpoint, which must not be logged twice. InputError naming the
// file when it is not a regular file or not a metrics log.
void truncate_metrics(const std::string& path, long long step);

}  // namespace gloss::train
