#pragma once
// Batch translation of text with a model file from `gloss train`. Streaming: input is read in
// windows, sorted by length within a window for speed, translated in batches and written
// back in input order; exactly one output line per input line (with --n-best, up to n_best
// lines of distinct hypotheses per input line; an empty input line has one, empty).
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "gloss/decode/search.h"
#include "gloss/decode/shortlist.h"
#include "gloss/model/seq2seq.h"
#include "gloss/nn/parameter.h"
#include "gloss/text/subword.h"

namespace gloss::decode {

struct TranslateOptions {
  int beam_size = 5;            // 1: greedy
  float length_penalty = 1.0f;  // score = log p / length^alpha
  double max_len_ratio = 2.0;   // output limit: ratio * source subwords + max_len_add
  int max_len_add = 10;
  int n_best = 1;               // > 1: "id ||| text ||| score" lines
  int batch_size = 64;          // sentences per batch
  int max_src_len = 250;        // longer inputs are truncated (with a warning)
  int window = 2000;            // lines sorted by length together
  bool progress = false;        // progress line on stderr
  int max_batch_tokens = 0;     // > 0: at most this many padded source subwords per batch
  float coverage_penalty = 0;   // beta of Wu et al. (2016)
  int min_length = 0;           // subwords before EOS is allowed
  bool word_scores = false;     // append " ||| WordScores= ..." (per output word)
  std::string alignment;        // "", "hard" or "soft": append " ||| " + subword alignment
  std::string shortlist;        // a file from gloss shortlist: output layer over it only
  std::string attention_svg;    // draw the attention matrix of line attention_line here
  std::size_t attention_line = 1;
  std::string parallel = "data";  // data: batches side by side, one per thread; ops: threads inside each operation
  std::string precision = "f32";  // bf16: readout and output layers in bf16 (AVX512-BF16 CPUs)
};
void validate(const TranslateOptions& options);

class Translator {
 public:
  explicit Translator(const std::string& model_path);
  // An ensemble of models trained with the same subword models: log-probabilities averaged.
  explicit Translator(const std::vector<std::string>& model_paths);
  // Decode with a lexical shortlist (checked against the models' vocabularies).
  void set_shortlist(const std::string& path);
  // Translations of `lines`; lines are numbered from first_line for n-best ids and warnings.
  std::vector<std::string> translate(const std::vector<std::string>& lines, const TranslateOptions& options,
                                     std::size_t first_line, std::ostream& log);

 private:
  void write_attention_svg(const std::vector<int>& src, const Hypothesis& h, const std::string& path) const;
  struct Member {
    nn::ParameterSet params;
    std::unique_ptr<model::Seq2Seq> model;
  };
  using Models = std::vector<std::unique_ptr<Member>>;
  // Translates the sentences src[idx[k]] as one batch with `models`; results[idx[k]] get theirs.
  void translate_batch(Models& models, const std::vector<std::vector<int>>& src, const std::vector<std::size_t>& idx,
                       const TranslateOptions& o, std::vector<std::vector<Hypothesis>>& results) const;
  Models models_;
  // With parallel = data: workers 1.. translate with replicas that read models_' weights.
  std::vector<Models> replicas_;
  std::vector<model::ModelConfig> configs_;
  bool bf16_ = false;  // what the models are set to
  std::unique_ptr<Shortlist> shortlist_;
  text::SubwordModel src_, tgt_;
};

// Reads `input` ("-" = stdin), writes `output` ("-" = stdout; a file is replaced atomically).
void translate_file(Translator& translator, const std::string& input, const std::string& output,
                    const TranslateOptions& options, std::ostream& out, std::ostream& log);

}  // namespace gloss::decode
