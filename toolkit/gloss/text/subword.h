#pragma once
// SentencePiece models: training (through the library, cached by a fingerprint of the corpus
// and options), encoding and decoding. Every model Gloss trains has the special ids below.
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gloss/text/options.h"
#include "gloss/text/special_ids.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace gloss::text {

class SubwordModel {
 public:
  // Throws InputError naming `path` if it is not a SentencePiece model with Gloss's ids.
  static SubwordModel load(const std::string& path);
  static SubwordModel from_bytes(const std::string& bytes, const std::string& name);

  std::vector<int> encode(std::string_view text) const;
  std::vector<std::string> encode_pieces(std::string_view text) const;
  // Up to n distinct segmentations of `text`, best first (the first is encode()'s). Unigram
  // models only (SentencePiece has no n-best for BPE); n >= 1.
  std::vector<std::vector<int>> encode_nbest(std::string_view text, int n) const;
  // The log probability of a piece in a unigram model (0 for BPE merges' pieces).
  float score(int id) const;
  // Detokenised text exactly as SentencePiece's decoder gives it.
  std::string decode(const std::vector<int>& ids) const;
  std::string decode_pieces(const std::vector<std::string>& pieces) const;
  int vocab_size() const;
  std::string piece(int id) const;                     // the piece of an id ("▁Ein", "<0xC3>", "</s>")
  const std::string& bytes() const { return bytes_; }  // the serialised model (for model files)

 private:
  std::shared_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::string bytes_;
  std::string name_;
};

struct SubwordModelPaths {
  std::string src, tgt;  // the same file when the model is joint
};

// Trains the models `options` describes on the training corpus, under `dir`, or reuses them
// when a model with the same fingerprint (corpus content, options, format) is there.
// Progress and warnings go to `log`.
SubwordModelPaths prepare_subword_models(const DataOptions& data, const SubwordOptions& options, const std::string& dir,
                                         std::ostream& log);

// The fingerprint prepare_subword_models uses: 16 hex digits.
std::string subword_fingerprint(const std::vector<std::string>& files, const SubwordOptions& options,
                                const std::string& side);

}  // namespace gloss::text
