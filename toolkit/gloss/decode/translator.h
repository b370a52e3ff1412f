#pragma once
// Translation of sentences with model files from `gloss train`: one model, or an ensemble of
// models trained with the same subword models (log-probabilities averaged). Sentences are
// sorted by length, translated in batches (a batch's sentences side by side in every search
// step) and returned in input order as result structs; turning them into text lines, n-best
// lists or heat maps is the caller's (translate/ does it for files).
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gloss/decode/options.h"
#include "gloss/decode/search.h"
#include "gloss/decode/shortlist.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/parameter.h"
#include "gloss/text/subword.h"

namespace gloss::decode {

// One sentence's translation.
struct Translation {
  std::vector<int> source;             // its source subword ids (cut to max_src_len)
  std::vector<Hypothesis> hypotheses;  // best first: up to n_best distinct ones; one, empty, for an empty sentence
};

// The sentences src[idx[k]] (k < N, the longest first or not) as one padded, time-major batch
// for the model, with each sentence's output limit.
struct SourceBatch {
  int N = 0, S = 0;
  std::vector<std::int32_t> ids, lengths;  // [S, N] padded with kPadId; [N]
  std::vector<int> max_len;                // [N]: max_output_length of each
  model::BatchView view() const { return {N, S, 0, ids.data(), lengths.data(), nullptr, nullptr}; }
};
SourceBatch make_source_batch(const std::vector<std::vector<int>>& src, const std::vector<std::size_t>& idx,
                              const TranslateOptions& options);

class Translator {
 public:
  // Loads the model files or training checkpoints (a checkpoint's weight average, when it has
  // one; InputError naming a file that is neither, or whose subword models differ from the
  // first's). Turns on huge pages for large tensors (tensor.h).
  explicit Translator(const std::vector<std::string>& model_paths);
  // The lexical shortlist to decode with: "model" (the one stored in the first model file; none
  // if it has none), "none" or "" (the whole vocabulary), or a file from gloss shortlist.
  // InputError when the list does not fit the models' vocabularies.
  void use_shortlist(const std::string& choice);
  bool has_shortlist() const { return shortlist_ != nullptr; }
  // Translations of `lines`, in order. Warnings (on `log`) name them as source:line, lines
  // numbered from first_line. options.search.word_scores and .attention say what the
  // hypotheses keep.
  std::vector<Translation> translate(const std::vector<std::string>& lines, const TranslateOptions& options,
                                     std::string_view source, std::size_t first_line, std::ostream& log);

  const text::SubwordModel& source_subwords() const { return src_; }
  const text::SubwordModel& target_subwords() const { return tgt_; }
  // A hypothesis as text (its subwords decoded).
  std::string text(const Hypothesis& h) const;

 private:
  struct Member {
    nn::ParameterSet params;
    std::unique_ptr<model::Seq2Seq> model;
  };
  using Models = std::vector<std::unique_ptr<Member>>;
  // Translates the sentences src[idx[k]] as one batch with `models`; results[idx[k]] get theirs.
  void translate_batch(Models& models, const std::vector<std::vector<int>>& src, const std::vector<std::size_t>& idx,
                       const TranslateOptions& o, std::vector<Translation>& results) const;
  // Batches of similar lengths (longest first within the list), at most batch_size sentences
  // and max_batch_tokens padded source subwords each; empty sentences are in none.
  static std::vector<std::vector<std::size_t>> length_batches(const std::vector<std::vector<int>>& src,
                                                              const TranslateOptions& o);
  void use_precision(const std::string& precision);
  void ensure_replicas(int count);

  Models models_;
  // With parallel = data: workers 1.. translate with replicas that read models_' weights.
  std::vector<Models> replicas_;
  std::vector<model::ModelConfig> configs_;
  bool bf16_ = false;  // what the models are set to
  std::unique_ptr<Shortlist> shortlist_;
  std::string stored_shortlist_;  // the first model file's (text), "" if none
  std::string first_path_;
  text::SubwordModel src_, tgt_;
};

}  // namespace gloss::decode
