#pragma once
// Subword regularisation (Kudo, 2018, "Subword Regularization"): every epoch, each training
// sentence is segmented by a draw among its n best segmentations, with probability
// proportional to P(segmentation)^alpha. A draw depends only on (seed, epoch, pair), so an
// epoch's corpus is a pure function of them and a resumed run sees the same segmentations.
#include <cstdint>
#include <string>
#include <vector>

#include "gloss/text/corpus.h"

namespace gloss::text {

struct SamplingOptions {
  int nbest = 1;       // segmentations to draw from (1: always the best)
  double alpha = 0.1;  // inverse temperature: 0 draws uniformly, large values keep the best
};

class SegmentationSampler {
 public:
  // Reads the lines of `corpus`'s pairs again (corpus.line(i)) from the two files and keeps up
  // to options.nbest segmentations of each side with their probabilities: memory of about
  // nbest times the corpus's ids. Throws InputError if a file no longer has a pair's line, and
  // UserError for a BPE model (no n-best segmentations).
  SegmentationSampler(const std::string& src_path, const std::string& tgt_path, const SubwordModel& src_model,
                      const SubwordModel& tgt_model, const EncodedCorpus& corpus, SamplingOptions options,
                      FilterOptions filter, int threads);

  // The corpus of `epoch` (same pairs, same order as the one given to the constructor): one drawn
  // segmentation per side. A pair whose draw breaks the filter's length limits keeps its best
  // segmentation.
  EncodedCorpus sample(std::uint64_t seed, int epoch) const;

  // Mean number of segmentations kept per sentence, source and target.
  double mean_candidates() const;

 private:
  // Segmentations of each sentence, flat: sentence k owns segmentations first[k] .. first[k+1]-1.
  struct Side {
    std::vector<std::int32_t> ids;
    std::vector<std::uint32_t> offsets{0};  // per segmentation: its ids are ids[offsets[j] .. offsets[j+1])
    std::vector<float> cumulative;          // per segmentation: cumulative probability within its sentence
    std::vector<std::uint32_t> first{0};    // per sentence
    void add(const std::vector<std::vector<int>>& nbest, const SubwordModel& model, double alpha);
    std::uint32_t draw(std::size_t sentence, double u) const;
  };
  Side src_, tgt_;
  FilterOptions filter_;
  std::vector<std::size_t> lines_;
};

}  // namespace gloss::text
