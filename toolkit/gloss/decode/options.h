#pragma once
// Options of the searches and of the translator, each with its default in one place: the
// recipe's [decode] keys (recipe/recipe.cc) and `gloss translate`'s options (cli/commands.cc)
// write straight into these structs.
#include <cstdint>
#include <string>
#include <vector>

namespace gloss::decode {

struct SearchOptions {
  int beam_size = 5;            // 1 (with nothing else asked of the search): greedy
  float length_penalty = 1.0f;  // alpha of score = log p / length^alpha
  int n_best = 1;               // hypotheses returned per sentence (<= beam_size)
  float coverage_penalty = 0;   // beta of Wu et al. (2016): + beta * sum_j log(min(sum_i a_ij, 1))
  int min_length = 0;           // EOS is not allowed before this many subwords
  // A sentence's search may stop only once this many hypotheses have finished (and its best
  // candidate of a step ends): 1 stops at the first, more search longer and find longer and
  // better-scored translations; at least n_best is used.
  int stop_after = 1;
  // Set per search by the caller:
  bool word_scores = false;  // keep each output subword's log-probability
  bool attention = false;    // keep the attention weights of each output subword
  // With an output subset (Seq2Seq::set_output_subset): per sentence n of the batch, the
  // columns (positions in the subset) it may produce; its probabilities are normalised over them.
  const std::vector<std::vector<std::int32_t>>* allowed = nullptr;
};

struct TranslateOptions {
  SearchOptions search;
  double max_len_ratio = 2.0;  // output limit: ratio * source subwords + max_len_add
  int max_len_add = 10;
  int batch_size = 64;       // sentences per batch
  int max_batch_tokens = 0;  // > 0: at most this many padded source subwords per batch
  int max_src_len = 250;     // longer inputs are truncated (with a warning)
  int window = 2000;         // lines sorted by length together
  // Lexical shortlist, the output layer over its subwords only: "none", "model" (the model
  // file's own), or a file from gloss shortlist. Off by default: it cost quick-en-de 1.1 val
  // BLEU on 2026-12-02 (README, Translating).
  std::string shortlist = "none";
  std::string parallel = "data";  // data: batches side by side, one per thread; ops: threads inside each operation
  // bf16: recurrent, readout and output layers in bf16 (AVX512-BF16 CPUs); auto: bf16 where the
  // CPU has it (within 0.1 val BLEU of f32 on the bundled recipes, README, Translating)
  std::string precision = "auto";
};
// Throws ConfigError naming the `gloss translate` option of a bad value.
void validate(const TranslateOptions& options);

// The output limit of a source of `length` subwords.
inline int max_output_length(const TranslateOptions& o, std::size_t length) {
  return static_cast<int>(o.max_len_ratio * static_cast<double>(length)) + o.max_len_add;
}

}  // namespace gloss::decode
