#pragma once
// Training curves from a run's metrics.jsonl (one JSON object per validation, written by
// `gloss train`) as a self-contained SVG image: training loss and validation cross-entropy
// on the left, validation BLEU and chrF on the right, both against the update step.
#include <string>
#include <vector>

namespace gloss::report {

struct MetricsRow {
  long long step = 0;
  int epoch = 0;
  double train_loss = 0, valid_ce = 0, valid_ppl = 0, valid_bleu = 0, valid_chrf = 0, lr = 0, elapsed_s = 0;
};

// Reads metrics.jsonl; a line that is not such an object is an InputError naming file:line.
// When a step appears more than once (a run restarted), the later line wins.
std::vector<MetricsRow> read_metrics(const std::string& path);

// The SVG document (UTF-8 text). `title` goes above the two panels.
std::string training_curves_svg(const std::vector<MetricsRow>& rows, const std::string& title);

// The attention matrix of one translation as an SVG heat map: source pieces along the top,
// target pieces down the left, one cell per weight (white 0 to dark blue 1), each labelled
// when it is at least 0.1. weights: [targets, sources] row-major.
std::string attention_svg(const std::vector<std::string>& src_pieces, const std::vector<std::string>& tgt_pieces,
                          const std::vector<float>& weights);
// The same heat map as PNG file bytes (drawn with cairo, text in DejaVu Sans).
std::string attention_png(const std::vector<std::string>& src_pieces, const std::vector<std::string>& tgt_pieces,
                          const std::vector<float>& weights);

}  // namespace gloss::report
