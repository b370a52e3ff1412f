#pragma once
// Searches over a model's output: greedy and beam search (one model or an ensemble), driven
// through the model's inference step interface (Seq2Seq::start, step, advance, reorder), as
// CTranslate2's search strategies drive a decoder.
//
// A batch is searched at once: every sentence's hypotheses are rows of the same oneDNN step
// calls, and a sentence whose search ended leaves the batch, which shrinks. Results do not
// depend on which other sentences share the batch (to the last bit on one thread count).
// A search keeps its decoder state in each model's Seq2Seq::search_state(), reused by the
// next batch: one search at a time per model.
#include <cstdint>
#include <vector>

#include "gloss/decode/options.h"
#include "gloss/model/seq2seq.h"

namespace gloss::decode {

struct Hypothesis {
  std::vector<std::int32_t> ids;  // without EOS
  double log_prob = 0;            // sum of word log-probabilities (EOS included)
  double score = 0;               // normalised: log_prob / length^alpha (+ coverage penalty)
  // With SearchOptions::word_scores: the log-probability of each subword of ids, then of EOS
  // when the hypothesis ended with it.
  std::vector<float> word_log_probs;
  // With SearchOptions::attention: one row per entry of word_log_probs (the same steps), each
  // the weights over the sentence's src_lengths[n] source subwords.
  std::vector<float> attention;
};

// The most probable word at each step (never pad, unk or BOS) until EOS or max_len[n] words,
// for every sentence of the batch (tgt fields unused). Returns subword ids without EOS.
// Throws ConfigError if the model has an output subset (greedy runs over the vocabulary).
std::vector<std::vector<std::int32_t>> greedy_search(model::Seq2Seq& model, const model::BatchView& batch,
                                                     const std::vector<int>& max_len);

// Beam search with `models` (one, or an ensemble of models with the same vocabularies, each
// word scored by the mean of their log-probabilities; attention outputs are their mean).
// Hypotheses end with EOS or at max_len[n] words; finished ones are ranked by score. A
// sentence's search goes on until max(options.n_best, options.stop_after) hypotheses have
// finished and its best candidate of a step ends (or its length limit): up to n_best distinct hypotheses per
// sentence, best first. Throws ConfigError for models that do not fit together.
std::vector<std::vector<Hypothesis>> beam_search(const std::vector<model::Seq2Seq*>& models,
                                                 const model::BatchView& batch, const std::vector<int>& max_len,
                                                 const SearchOptions& options);

}  // namespace gloss::decode
