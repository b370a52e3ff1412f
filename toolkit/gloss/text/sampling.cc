#include "gloss/text/sampling.h"

#include <algorithm>
#include <cmath>

#include "gloss/tensor/compute.h"
#include "gloss/util/error.h"
#include "gloss/util/line_reader.h"
#include "gloss/util/rng.h"

namespace gloss::text {

void SegmentationSampler::Side::add(const std::vector<std::vector<int>>& nbest, const SubwordModel& model,
                                    double alpha) {
  std::vector<double> scores;
  for (const auto& seg : nbest) {
    double s = 0;
    for (int id : seg) s += model.score(id);
    scores.push_back(s);
  }
  const double top = *std::max_element(scores.begin(), scores.end());
  double total = 0;
  for (auto& s : scores) total += (s = std::exp(alpha * (s - top)));
  double acc = 0;
  for (std::size_t j = 0; j < nbest.size(); ++j) {
    for (int id : nbest[j]) ids.push_back(id);
    offsets.push_back(static_cast<std::uint32_t>(ids.size()));
    acc += scores[j] / total;
    cumulative.push_back(j + 1 == nbest.size() ? 1.0f : static_cast<float>(acc));
  }
  first.push_back(static_cast<std::uint32_t>(cumulative.size()));
}

std::uint32_t SegmentationSampler::Side::draw(std::size_t sentence, double u) const {
  const auto begin = cumulative.begin() + first[sentence], end = cumulative.begin() + first[sentence + 1];
  const auto it = std::upper_bound(begin, end, static_cast<float>(u));
  return static_cast<std::uint32_t>((it == end ? end - 1 : it) - cumulative.begin());
}

SegmentationSampler::SegmentationSampler(const std::string& src_path, const std::string& tgt_path,
                                         const SubwordModel& src_model, const SubwordModel& tgt_model,
                                         const EncodedCorpus& corpus, SamplingOptions options, FilterOptions filter,
                                         int threads)
    : filter_(filter) {
  if (options.nbest < 1) throw UserError("subword.sample_nbest must be at least 1");
  LineReader src_reader(src_path), tgt_reader(tgt_path);
  constexpr std::size_t kChunk = 4096;  // pairs whose lines are read, then segmented in parallel
  std::vector<std::string> src_lines, tgt_lines;
  std::vector<std::vector<std::vector<int>>> src_nbest(kChunk), tgt_nbest(kChunk);
  std::string a, b;
  for (std::size_t i = 0; i < corpus.size(); i += kChunk) {
    src_lines.clear();
    tgt_lines.clear();
    const EncodedCorpus chunk = corpus.slice(i, kChunk);  // for the line numbers
    for (std::size_t k = 0; k < chunk.size(); ++k) {
      const std::size_t line = chunk.line(k);
      while (src_reader.line_number() < line) {
        if (!src_reader.next(a)) throw InputError(src_path, line, "line missing: the file changed during training");
        if (!tgt_reader.next(b)) throw InputError(tgt_path, line, "line missing: the file changed during training");
      }
      src_lines.push_back(a);
      tgt_lines.push_back(b);
      lines_.push_back(line);
    }
    compute::run_workers(std::max(1, threads), src_lines.size(), [&](int, std::size_t k) {
      src_nbest[k] = src_model.encode_nbest(src_lines[k], options.nbest);
      tgt_nbest[k] = tgt_model.encode_nbest(tgt_lines[k], options.nbest);
    });
    for (std::size_t k = 0; k < src_lines.size(); ++k) {
      src_.add(src_nbest[k], src_model, options.alpha);
      tgt_.add(tgt_nbest[k], tgt_model, options.alpha);
    }
  }
}

void SegmentationSampler::Side::copy(std::uint32_t j, std::vector<int>& out) const {
  out.clear();
  for (std::uint32_t i = offsets[j]; i < offsets[j + 1]; ++i) out.push_back(ids[i]);
}

EncodedCorpus SegmentationSampler::sample(std::uint64_t seed, int epoch, EncodedCorpus out) const {
  std::vector<int> s, t;
  for (std::size_t i = 0; i < lines_.size(); ++i) {
    Rng rng(seed * 0x9E3779B97F4A7C15ULL ^ static_cast<std::uint64_t>(epoch) * 0xC2B2AE3D27D4EB4FULL ^
            static_cast<std::uint64_t>(i) * 0x165667B19E3779F9ULL);
    std::uint32_t js = src_.draw(i, rng.uniform()), jt = tgt_.draw(i, rng.uniform());
    if (!keeps(src_.offsets[js + 1] - src_.offsets[js], tgt_.offsets[jt + 1] - tgt_.offsets[jt], filter_)) {
      js = src_.first[i];  // the best segmentations, which passed the filter
      jt = tgt_.first[i];
    }
    src_.copy(js, s);
    tgt_.copy(jt, t);
    out.add(s, t, lines_[i]);
  }
  out.seal();
  return out;
}

double SegmentationSampler::mean_candidates() const {
  if (lines_.empty()) return 0;
  return static_cast<double>(src_.cumulative.size() + tgt_.cumulative.size()) / (2.0 * lines_.size());
}

}  // namespace gloss::text
