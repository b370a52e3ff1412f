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

// Subword ids (0 .. 2^24 - 1) in 2 bytes each while all are below 65,536, 3 bytes once one is
// not: half the memory of int32 for the usual vocabularies (at most model::kMaxVocab = 2^21).
class PackedIds {
 public:
  void push_back(int id) {
    if (id > 0xFFFF && !wide_) {
      wide_ = true;
      high_.assign(low_.size(), 0);
    }
    low_.push_back(static_cast<std::uint16_t>(id & 0xFFFF));
    if (wide_) high_.push_back(static_cast<std::uint8_t>(id >> 16));
  }
  int operator[](std::size_t i) const { return low_[i] | (wide_ ? static_cast<int>(high_[i]) << 16 : 0); }
  std::size_t size() const { return low_.size(); }
  std::size_t bytes() const { return low_.size() * 2 + high_.size(); }

 private:
  std::vector<std::uint16_t> low_;  // bits 0-15
  std::vector<std::uint8_t> high_;  // bits 16-23, once an id needs them
  bool wide_ = false;
};

class SegmentationSampler {
 public:
  // Reads the lines of `corpus`'s pairs again (by their line numbers) from the two files and keeps up
  // to options.nbest segmentations of each side with their probabilities: memory of about
  // nbest times the corpus's ids. Throws InputError if a file no longer has a pair's line, and
  // UserError for a BPE model (no n-best segmentations).
  SegmentationSampler(const std::string& src_path, const std::string& tgt_path, const SubwordModel& src_model,
                      const SubwordModel& tgt_model, const EncodedCorpus& corpus, SamplingOptions options,
                      FilterOptions filter, int threads);

  // The corpus of `epoch` (same pairs, same order as the one given to the constructor): one drawn
  // segmentation per side, into `out` (empty: in memory, or EncodedCorpus::on_disk(dir)),
  // which comes back sealed. A pair whose draw breaks the filter's length limits keeps its
  // best segmentation.
  EncodedCorpus sample(std::uint64_t seed, int epoch, EncodedCorpus out = EncodedCorpus()) const;

  // Mean number of segmentations kept per sentence, source and target.
  double mean_candidates() const;

 private:
  // Segmentations of each sentence, flat: sentence k owns segmentations first[k] .. first[k+1]-1.
  struct Side {
    PackedIds ids;                          // of every segmentation
    std::vector<std::uint32_t> offsets{0};  // per segmentation: its ids are [offsets[j], offsets[j+1])
    std::vector<float> cumulative;          // per segmentation: cumulative probability within its sentence
    std::vector<std::uint32_t> first{0};    // per sentence
    void add(const std::vector<std::vector<int>>& nbest, const SubwordModel& model, double alpha);
    std::uint32_t draw(std::size_t sentence, double u) const;
    // The ids of segmentation j, into `out`.
    void copy(std::uint32_t j, std::vector<int>& out) const;
  };
  Side src_, tgt_;
  FilterOptions filter_;
  std::vector<std::size_t> lines_;
};

}  // namespace gloss::text
