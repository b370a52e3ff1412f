#pragma once
// A lexical shortlist for decoding: the target subwords a sentence may produce, so the output
// layer computes a few hundred columns instead of the whole vocabulary. Built from a parallel
// corpus: the `frequent` most frequent target subwords, plus for every source subword the
// `per_source` target subwords that co-occur with it most strongly (Dice coefficient of the
// sentence co-occurrence counts). A sentence's list is the union over its source subwords.
// Text format (a file from `gloss shortlist`, or ModelFile::shortlist inside a model file):
// "gloss-shortlist 1 <target vocabulary> <source vocabulary>", a line of frequent ids, then one
// line per source id: "<source id>\t<target ids...>".
#include <cstdint>
#include <istream>
#include <string>
#include <vector>

#include "gloss/text/corpus.h"

namespace gloss::decode {

// The sizes `gloss shortlist` and training (the list stored in model files) build with.
struct ShortlistSizes {
  int frequent = 300;   // most frequent target subwords, always allowed
  int per_source = 30;  // target subwords listed per source subword
};
// ConfigError naming --frequent and --per-source when either is negative or both are 0 (a
// list that allows only the end of sentence: every translation would be empty).
void validate(const ShortlistSizes& sizes);

class Shortlist {
 public:
  static Shortlist build(const text::EncodedCorpus& corpus, int src_vocab, int tgt_vocab, ShortlistSizes sizes);
  // Reads a shortlist for a model of these vocabulary sizes: InputError naming file:line when it
  // was built for others (checked before anything is allocated) or is damaged.
  static Shortlist load(const std::string& path, int src_vocab, int tgt_vocab);
  // The same from the text itself (a model file's list); `name` names it in errors.
  static Shortlist parse(const std::string& text, const std::string& name, int src_vocab, int tgt_vocab);
  std::string to_text() const;
  void save(const std::string& path) const;  // atomically

  int src_vocab() const { return src_vocab_; }
  int tgt_vocab() const { return tgt_vocab_; }
  // How many target subwords are always allowed (at most ShortlistSizes::frequent).
  std::size_t frequent_count() const { return frequent_.size(); }
  // The sorted target ids a sentence with these source ids may produce (EOS always included).
  std::vector<std::int32_t> for_sentence(const std::vector<int>& src) const;

 private:
  // Reads the text format from `in`, line by line; `path` names it in errors.
  static Shortlist read(std::istream& in, const std::string& path, int src_vocab, int tgt_vocab);
  int src_vocab_ = 0, tgt_vocab_ = 0;
  std::vector<std::int32_t> frequent_;
  std::vector<std::vector<std::int32_t>> by_source_;  // [src_vocab]
};

}  // namespace gloss::decode
