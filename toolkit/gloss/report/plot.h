#pragma once
// Pictures of a run, drawn without reaching into what made them:
// - training curves from the rows of a run's metrics.jsonl (train/metrics.h) as a
//   self-contained SVG image: training loss and validation cross-entropy on the left,
//   validation BLEU and chrF on the right, both against the update step;
// - attention heat maps of one translation, as SVG or PNG (cairo).
#include <string>
#include <vector>

#include "gloss/train/metrics.h"

namespace gloss::report {

// The SVG document (UTF-8 text). `title` goes above the two panels.
std::string training_curves_svg(const std::vector<train::MetricsRow>& rows, const std::string& title);

// The attention matrix of one translation as an SVG heat map: source pieces along the top,
// target pieces down the left, one cell per weight (white 0 to dark blue 1), each labelled
// when it is at least 0.1. weights: [targets, sources] row-major.
std::string attention_svg(const std::vector<std::string>& src_pieces, const std::vector<std::string>& tgt_pieces,
                          const std::vector<float>& weights);
// The same heat map as PNG file bytes (drawn with cairo, text in DejaVu Sans).
std::string attention_png(const std::vector<std::string>& src_pieces, const std::vector<std::string>& tgt_pieces,
                          const std::vector<float>& weights);

}  // namespace gloss::report
