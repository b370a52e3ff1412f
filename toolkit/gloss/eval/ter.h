#pragma once
// TER (Snover et al. 2006) as sacreBLEU 2.x computes it: Tercom's greedy shifts with
// sacreBLEU's beam edit distance, tie-breaking and limits, so the edit counts are identical.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gloss/eval/metric.h"
#include "gloss/eval/tokenizers.h"

namespace gloss::eval {

// Number of edits (shifts + insertions, deletions, substitutions) that turn `hyp` into `ref`.
int translation_edit_count(const std::vector<std::string_view>& hyp, const std::vector<std::string_view>& ref);

class Ter : public Metric {
 public:
  explicit Ter(TercomOptions options = {});
  const TercomOptions& options() const { return options_; }

  std::string preprocess(std::string_view segment) const;
  // Flat statistics: (best number of edits, average reference length).
  Stats sentence_stats(std::string_view hypothesis, const std::vector<std::string>& references) const;
  Stats preprocessed_stats(std::string_view hypothesis, const std::vector<std::string>& references) const;

  std::vector<int> set_references(const std::vector<std::vector<std::string>>& refs) override;
  Stats segment_stats(std::string_view hypothesis, std::size_t segment) const override;
  Score compute(const Stats& summed) const override;
  Signature signature(const std::string& nrefs) const override;
  std::size_t num_stats() const override { return 2; }

 private:
  TercomOptions options_;
  std::vector<std::vector<std::string>> refs_;
};

}  // namespace gloss::eval
