#pragma once
// chrF / chrF++ (Popović 2015, 2017) exactly as sacreBLEU 2.x: character n-grams without
// whitespace, optional word n-grams after its punctuation splitting, effective-order
// averaging of precision and recall (or epsilon smoothing), best reference by F-score.
#include <string>
#include <string_view>
#include <vector>

#include "gloss/eval/metric.h"

namespace gloss::eval {

struct ChrfOptions {
  int char_order = 6;          // --chrf-char-order
  int word_order = 0;          // --chrf-word-order (2 = chrF++)
  int beta = 2;                // --chrf-beta
  bool lowercase = false;      // --chrf-lowercase
  bool whitespace = false;     // --chrf-whitespace: keep whitespace in character n-grams
  bool eps_smoothing = false;  // --chrf-eps-smoothing
};
void validate(const ChrfOptions& options);

class Chrf : public Metric {
 public:
  explicit Chrf(ChrfOptions options = {});
  const ChrfOptions& options() const { return options_; }

  std::string preprocess(std::string_view segment) const;
  // Flat statistics: (hyp, ref, match) counts per order, character orders then word orders.
  Stats sentence_stats(std::string_view hypothesis, const std::vector<std::string>& references) const;
  Stats preprocessed_stats(std::string_view hypothesis, const std::vector<std::string>& references) const;
  double f_score(const Stats& stats) const;  // 0..100

  std::vector<int> set_references(const std::vector<std::vector<std::string>>& refs) override;
  Stats segment_stats(std::string_view hypothesis, std::size_t segment) const override;
  Score compute(const Stats& summed) const override;
  Signature signature(const std::string& nrefs) const override;
  std::size_t num_stats() const override {
    return 3 * static_cast<std::size_t>(options_.char_order + options_.word_order);
  }
  std::string name() const;  // "chrF2", "chrF2++"

 private:
  ChrfOptions options_;
  std::vector<std::vector<std::string>> refs_;
};

}  // namespace gloss::eval
