#pragma once
// BLEU (Papineni et al. 2002) exactly as sacreBLEU 2.x computes it: same tokenizers, same
// n-gram clipping over multiple references, same closest-reference length, same smoothing.
//
// Training calls it without re-tokenising anything twice:
//   Bleu bleu;                         // sacreBLEU defaults
//   BleuStats total;
//   for (...) total += bleu.sentence_stats(hyp, {ref});
//   double score = bleu.score(total).score;
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gloss/eval/metric.h"
#include "gloss/eval/tokenizers.h"

namespace gloss::eval {

enum class SmoothMethod { kNone, kFloor, kAddK, kExp };
// "none", "floor", "add-k", "exp"; throws ConfigError listing the valid names.
SmoothMethod parse_smooth_method(std::string_view name);

struct BleuOptions {
  bool lowercase = false;                           // -lc
  BleuTokenizer tokenizer = BleuTokenizer::k13a;    // --tokenize
  SmoothMethod smooth_method = SmoothMethod::kExp;  // --smooth-method
  std::optional<double> smooth_value;               // --smooth-value; default floor 0.1, add-k 1
  int max_ngram_order = 4;                          // --max-ngram-order
  bool effective_order = false;                     // --effective-order (on for --sentence-level)
};
void validate(const BleuOptions& options);  // throws ConfigError naming the option

// Sufficient statistics; they add up over sentences.
struct BleuStats {
  std::int64_t sys_len = 0;
  std::int64_t ref_len = 0;
  std::vector<std::int64_t> correct;  // matched n-grams per order (clipped)
  std::vector<std::int64_t> total;    // hypothesis n-grams per order
  BleuStats& operator+=(const BleuStats& other);
};

struct BleuScore {
  double score = 0.0;
  std::vector<double> counts;      // matched n-grams per order (after add-k smoothing)
  std::vector<double> totals;      // hypothesis n-grams per order (after add-k smoothing)
  std::vector<double> precisions;  // percent
  double bp = 0.0;
  double ratio = 0.0;
  std::int64_t sys_len = 0;
  std::int64_t ref_len = 0;
  // "60.2 100.0/84.3/... (BP = ...)" without the score: what sacreBLEU prints after it.
  std::string verbose() const;
};

class Bleu : public Metric {
 public:
  explicit Bleu(BleuOptions options = {});
  const BleuOptions& options() const { return options_; }

  // Lowercasing (if on) and tokenisation, as applied to every segment before counting.
  std::string preprocess(std::string_view segment) const;
  // Statistics of one raw hypothesis against its raw references (empty ones are skipped).
  BleuStats sentence_stats(std::string_view hypothesis, const std::vector<std::string>& references) const;
  // The same on already preprocessed text.
  BleuStats preprocessed_stats(std::string_view hypothesis, const std::vector<std::string>& references) const;
  BleuScore score(const BleuStats& stats) const;

  // Metric interface (flat statistics: sys_len, ref_len, correct[N], total[N]).
  std::vector<int> set_references(const std::vector<std::vector<std::string>>& refs) override;
  Stats segment_stats(std::string_view hypothesis, std::size_t segment) const override;
  Score compute(const Stats& summed) const override;
  Signature signature(const std::string& nrefs) const override;
  std::size_t num_stats() const override { return 2 + 2 * static_cast<std::size_t>(options_.max_ngram_order); }

  static Stats flatten(const BleuStats& stats);
  BleuStats unflatten(const Stats& stats) const;

 private:
  BleuOptions options_;
  std::vector<std::vector<std::string>> refs_;  // preprocessed, per segment
};

}  // namespace gloss::eval
