#pragma once
// A lexical shortlist for decoding: the target subwords a sentence may produce, so the output
// layer computes a few hundred columns instead of the whole vocabulary. Built from a parallel
// corpus: the `frequent` most frequent target subwords, plus for every source subword the
// `per_source` target subwords that co-occur with it most strongly (Dice coefficient of the
// sentence co-occurrence counts). A sentence's list is the union over its source subwords.
// File: text, "gloss-shortlist 1 <target vocabulary> <source vocabulary>", a line of frequent
// ids, then one line per source id: "<source id>\t<target ids...>".
#include <cstdint>
#include <string>
#include <vector>

#include "gloss/text/corpus.h"

namespace gloss::decode {

class Shortlist {
 public:
  static Shortlist build(const text::EncodedCorpus& corpus, int src_vocab, int tgt_vocab, int frequent, int per_source);
  // Reads a shortlist for a model of these vocabulary sizes: InputError naming file:line when it
  // was built for others (checked before anything is allocated) or is damaged.
  static Shortlist load(const std::string& path, int src_vocab, int tgt_vocab);
  void save(const std::string& path) const;  // atomically

  int src_vocab() const { return src_vocab_; }
  int tgt_vocab() const { return tgt_vocab_; }
  // The sorted target ids a sentence with these source ids may produce (EOS always included).
  std::vector<std::int32_t> for_sentence(const std::vector<int>& src) const;

 private:
  int src_vocab_ = 0, tgt_vocab_ = 0;
  std::vector<std::int32_t> frequent_;
  std::vector<std::vector<std::int32_t>> by_source_;  // [src_vocab]
};

}  // namespace gloss::decode
