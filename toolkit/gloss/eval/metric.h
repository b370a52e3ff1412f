#pragma once
// The common shape of sacreBLEU's metrics: per-segment sufficient statistics that add up
// over a corpus (or a bootstrap resample), a score computed from summed statistics, and a
// reproducibility signature.
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gloss::eval {

// One field of a signature: long name, short name (for -sh), value.
struct SignatureField {
  std::string name;
  std::string short_name;
  std::string value;
};

// sacreBLEU's signature: "nrefs:1|case:mixed|...|version:2.6.0". Fields keep their order;
// version is always last. The version names the sacreBLEU release whose output we reproduce.
class Signature {
 public:
  static constexpr const char* kVersion = "2.6.0";
  void set(const std::string& name, const std::string& short_name, const std::string& value);
  std::string format(bool short_form) const;
  const std::vector<SignatureField>& fields() const { return fields_; }

 private:
  std::vector<SignatureField> fields_;
};

struct Score {
  std::string name;     // "BLEU", "chrF2", "chrF2++", "TER"
  double score = 0.0;   // 0..100
  std::string verbose;  // BLEU's "precisions (BP = ...)" part; empty for others
};

// The number of references per segment as a signature value: "1", "3", or "var".
std::string nrefs_value(int nrefs);

using Stats = std::vector<double>;

class Metric {
 public:
  virtual ~Metric() = default;
  // Preprocesses the references once; refs[r][i] is reference r of segment i. Empty
  // reference lines are skipped (a segment may have fewer references); a segment with no
  // non-empty reference is an error (the caller names the file and line).
  // Returns, per segment, the number of non-empty references.
  virtual std::vector<int> set_references(const std::vector<std::vector<std::string>>& refs) = 0;
  // Sufficient statistics of one hypothesis against segment `segment`'s references.
  virtual Stats segment_stats(std::string_view hypothesis, std::size_t segment) const = 0;
  virtual Score compute(const Stats& summed) const = 0;
  // nrefs: the value returned by nrefs_value(), for the signature.
  virtual Signature signature(const std::string& nrefs) const = 0;
  virtual std::size_t num_stats() const = 0;
};

// What every metric's set_references does: refs[r][i] (reference r of segment i) preprocessed
// into out[i], empty reference lines skipped; returns the count per segment.
template <class T, class Preprocess>
std::vector<int> collect_references(const std::vector<std::vector<std::string>>& refs, std::vector<std::vector<T>>& out,
                                    Preprocess&& preprocess) {
  const std::size_t segments = refs.empty() ? 0 : refs[0].size();
  out.assign(segments, {});
  std::vector<int> counts(segments, 0);
  for (std::size_t i = 0; i < segments; ++i) {
    for (const auto& stream : refs) {
      if (stream[i].empty()) continue;
      out[i].push_back(preprocess(stream[i]));
      ++counts[i];
    }
  }
  return counts;
}

// Sums per-segment statistics, in segment order (as sacreBLEU does, for identical rounding).
Stats sum_stats(const std::vector<Stats>& per_segment, std::size_t width);

}  // namespace gloss::eval
