#include "gloss/decode/search.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>

#include "gloss/tensor/kernels.h"
#include "gloss/text/special_ids.h"
#include "gloss/util/error.h"

namespace gloss::decode {

std::vector<std::vector<std::int32_t>> greedy_search(model::Seq2Seq& model, const model::BatchView& b,
                                                     const std::vector<int>& max_len) {
  if (!model.output_subset().empty())
    throw ConfigError("greedy search runs over the whole vocabulary; clear the output subset");
  const std::int64_t V = model.config().tgt_vocab;
  model::Seq2Seq::DecoderState& state = model.search_state();
  model.start(state, b, 1);
  std::vector<std::vector<std::int32_t>> out(static_cast<std::size_t>(b.N));
  std::vector<int> sentence(static_cast<std::size_t>(b.N));  // of each row; finished sentences leave
  std::iota(sentence.begin(), sentence.end(), 0);
  std::vector<std::int32_t> prev(sentence.size(), text::kBosId);
  std::vector<int> kept;
  for (int i = 0; !sentence.empty(); ++i) {
    model.step(state, prev.data());
    const Tensor& logits = state.logits();
    kept.clear();
    for (std::size_t r = 0; r < sentence.size(); ++r) {
      const float* row = logits.data() + static_cast<std::int64_t>(r) * V;
      // Never pick padding, BOS or unknown; EOS ends the sentence.
      const auto best = static_cast<std::int32_t>(text::kEosId + kernels::argmax(V - text::kEosId, row + text::kEosId));
      const auto k = static_cast<std::size_t>(sentence[r]);
      if (best == text::kEosId || i >= max_len[k]) continue;
      out[k].push_back(best);
      prev[kept.size()] = best;
      kept.push_back(static_cast<int>(r));
    }
    if (kept.size() == sentence.size()) {
      model.advance(state);
      continue;
    }
    for (std::size_t r = 0; r < kept.size(); ++r) sentence[r] = sentence[static_cast<std::size_t>(kept[r])];
    sentence.resize(kept.size());
    prev.resize(kept.size());
    if (!kept.empty()) model.reorder(state, kept, kept);
  }
  return out;
}

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// One beam search over a batch. Rows h = g * R + k: hypothesis k of active sentence group g
// (active_[g] is its sentence), R = group_rows_: 1 at the first step (a sentence has one
// hypothesis, so B rows would compute the same thing B times), B after. Every model's decoder
// state has the same rows.
class BeamSearch {
 public:
  BeamSearch(const std::vector<model::Seq2Seq*>& models, const model::BatchView& b, const std::vector<int>& max_len,
             const SearchOptions& o);
  std::vector<std::vector<Hypothesis>> run();

 private:
  // A live hypothesis (or an empty slot, lp == -inf) and its histories.
  struct Slot {
    double lp = kNegInf;
    std::vector<std::int32_t> ids;
    std::vector<float> word_lp, attention, coverage;
  };
  struct Candidate {
    double lp;
    int slot;
    std::int32_t tok;
    float word_lp;
  };
  // After the models' step: each live row's log-sum-exp (or the ensemble's mean
  // log-probabilities) and its 2B best words, in parallel.
  void score_rows();
  void best_words(int h, const float* row);
  // The hypothesis in row `parent` extended by `tok`.
  Slot extend(int parent, std::int32_t tok, double lp, float word_lp) const;
  double final_score(const Slot& slot, double lp, std::size_t len) const;
  // Group g's B best continuations into rows g * B.. of next_ (EOS ones finish); true when
  // the sentence's search is over.
  bool choose(int g, int step);
  // Drops the rows of finished sentences and moves next_ into slots_; false when none is left.
  bool compact(const std::vector<bool>& done);

  const std::vector<model::Seq2Seq*>& models_;
  const SearchOptions& o_;
  const std::vector<int>& max_len_;
  const int B_, M_;
  const bool track_attention_;
  std::vector<model::Seq2Seq::DecoderState*> states_;                        // each model's search_state()
  std::vector<std::unique_ptr<model::Seq2Seq::DecoderState>> extra_states_;  // a repeated model's
  std::vector<int> active_;
  int H_;
  int group_rows_ = 1;
  std::vector<std::int32_t> lengths_;  // source length of each row
  std::vector<Slot> slots_, next_;
  std::vector<int> src_slot_;
  std::vector<std::int32_t> prev_, next_tok_;
  std::vector<std::vector<Hypothesis>> finished_;
  std::vector<double> row_lse_;
  std::vector<std::vector<std::pair<float, std::int32_t>>> top_;
  std::vector<float> mixed_;  // ensembles: mean log-probabilities [H, V]
  Tensor alpha_mean_;         // ensembles: mean attention [S, H]
  const float* alpha_ = nullptr;
  std::int64_t columns_ = 0;  // output columns (V, or a shortlist's size)
};

BeamSearch::BeamSearch(const std::vector<model::Seq2Seq*>& models, const model::BatchView& b,
                       const std::vector<int>& max_len, const SearchOptions& o)
    : models_(models),
      o_(o),
      max_len_(max_len),
      B_(o.beam_size),
      M_(static_cast<int>(models.size())),
      track_attention_(o.attention || o.coverage_penalty != 0.0f) {
  const int N = b.N;
  const auto& first = *models[0];
  for (auto* m : models)
    if (m->output_subset() != first.output_subset())
      throw ConfigError("the models of an ensemble need the same output subset");
  if (!first.output_subset().empty() && !o.allowed)
    throw ConfigError("beam search with an output subset needs the allowed columns of each sentence");
  for (auto* m : models)
    if (m->config().tgt_vocab != first.config().tgt_vocab || m->config().src_vocab != first.config().src_vocab)
      throw ConfigError("the models of an ensemble need the same vocabularies");
  for (auto it = models.begin(); it != models.end(); ++it) {  // a model listed twice: a state of its own
    if (std::find(models.begin(), it, *it) == it) {
      states_.push_back(&(*it)->search_state());
    } else {
      extra_states_.push_back(std::make_unique<model::Seq2Seq::DecoderState>());
      states_.push_back(extra_states_.back().get());
    }
  }
  for (int m = 0; m < M_; ++m) models[static_cast<std::size_t>(m)]->start(*states_[static_cast<std::size_t>(m)], b, 1);
  active_.resize(static_cast<std::size_t>(N));
  std::iota(active_.begin(), active_.end(), 0);
  H_ = N;
  lengths_ = states_[0]->lengths;
  slots_.resize(static_cast<std::size_t>(H_));
  for (int n = 0; n < N; ++n) {
    Slot& start = slots_[static_cast<std::size_t>(n)];
    start.lp = 0.0;  // one live hypothesis to start
    if (o.coverage_penalty != 0.0f) start.coverage.assign(static_cast<std::size_t>(b.src_lengths[n]), 0.0f);
  }
  prev_.assign(static_cast<std::size_t>(H_), text::kBosId);
  finished_.resize(static_cast<std::size_t>(N));
  row_lse_.resize(static_cast<std::size_t>(H_));
  top_.resize(static_cast<std::size_t>(H_));
}

double BeamSearch::final_score(const Slot& slot, double lp, std::size_t len) const {
  double score = o_.length_penalty == 0.0f
                     ? lp
                     : lp / std::pow(static_cast<double>(std::max<std::size_t>(1, len)), o_.length_penalty);
  if (o_.coverage_penalty != 0.0f) {
    double cp = 0;
    for (float c : slot.coverage) cp += std::log(std::min(1.0, std::max(1e-10, static_cast<double>(c))));
    score += o_.coverage_penalty * cp;
  }
  return score;
}

void BeamSearch::score_rows() {
  const int S = states_[0]->S;
  alpha_ = states_[0]->attention().data();  // [S, H]
  if (M_ > 1 && track_attention_) {
    alpha_mean_.resize({S, H_});
    alpha_mean_.zero();
    for (auto& c : states_)
      for (std::int64_t k = 0; k < static_cast<std::int64_t>(S) * H_; ++k)
        alpha_mean_[k] += c->attention()[k] / static_cast<float>(M_);
    alpha_ = alpha_mean_.data();
  }
  columns_ = states_[0]->logits().dim(1);
  const std::int64_t Vc = columns_;
  if (M_ > 1) mixed_.resize(static_cast<std::size_t>(H_) * static_cast<std::size_t>(Vc));
#pragma omp parallel for schedule(dynamic, 4)
  for (int h = 0; h < H_; ++h) {
    top_[static_cast<std::size_t>(h)].clear();
    if (slots_[static_cast<std::size_t>(h)].lp == kNegInf) continue;
    // With a shortlist, only the sentence's own columns count (normalised over them).
    const std::vector<std::int32_t>* cols =
        o_.allowed ? &(*o_.allowed)[static_cast<std::size_t>(active_[static_cast<std::size_t>(h / group_rows_)])]
                   : nullptr;
    auto lse_of = [Vc, cols](const float* row) {
      return cols ? kernels::log_sum_exp(static_cast<std::int64_t>(cols->size()), cols->data(), row)
                  : kernels::log_sum_exp(Vc, row);
    };
    const float* row;
    if (M_ == 1) {
      row = states_[0]->logits().data() + static_cast<std::int64_t>(h) * Vc;
      row_lse_[static_cast<std::size_t>(h)] = lse_of(row);
    } else {
      float* mix = mixed_.data() + static_cast<std::int64_t>(h) * Vc;
      std::fill(mix, mix + Vc, 0.0f);
      for (auto& c : states_) {
        const float* r = c->logits().data() + static_cast<std::int64_t>(h) * Vc;
        const double lse = lse_of(r);
        for (std::int64_t v = 0; v < Vc; ++v) mix[v] += static_cast<float>((r[v] - lse) / M_);
      }
      row = mix;
      row_lse_[static_cast<std::size_t>(h)] = 0.0;
    }
    best_words(h, row);
  }
}

// The 2B best words of row h into top_[h] (pad, unk and BOS never chosen).
void BeamSearch::best_words(int h, const float* row) {
  auto& best = top_[static_cast<std::size_t>(h)];
  if (!o_.allowed) {  // the whole vocabulary: columns are words
    kernels::top_k(columns_ - text::kEosId, row + text::kEosId, 2 * B_, best);
    for (auto& entry : best) entry.second += text::kEosId;
    return;
  }
  // The sentence's shortlist columns: a heap of the 2B best so far, its smallest in front.
  for (auto k : (*o_.allowed)[static_cast<std::size_t>(active_[static_cast<std::size_t>(h / group_rows_)])]) {
    const std::int32_t word = models_[0]->output_word(k);
    if (word < text::kEosId) continue;
    if (static_cast<int>(best.size()) < 2 * B_) {
      best.emplace_back(row[k], word);
      std::push_heap(best.begin(), best.end(), std::greater<>());
    } else if (row[k] > best.front().first) {
      std::pop_heap(best.begin(), best.end(), std::greater<>());
      best.back() = {row[k], word};
      std::push_heap(best.begin(), best.end(), std::greater<>());
    }
  }
}

BeamSearch::Slot BeamSearch::extend(int parent, std::int32_t tok, double lp, float word_lp) const {
  const Slot& from = slots_[static_cast<std::size_t>(parent)];
  Slot next;
  next.lp = lp;
  next.ids = from.ids;
  if (tok != text::kEosId) next.ids.push_back(tok);
  if (o_.word_scores) {
    next.word_lp = from.word_lp;
    next.word_lp.push_back(word_lp);
  }
  if (!track_attention_) return next;
  const int len = lengths_[static_cast<std::size_t>(parent)];
  if (o_.attention) {
    next.attention = from.attention;
    for (int j = 0; j < len; ++j) next.attention.push_back(alpha_[static_cast<std::int64_t>(j) * H_ + parent]);
  }
  if (o_.coverage_penalty != 0.0f) {
    next.coverage = from.coverage;
    for (int j = 0; j < len; ++j)
      next.coverage[static_cast<std::size_t>(j)] += alpha_[static_cast<std::int64_t>(j) * H_ + parent];
  }
  return next;
}

bool BeamSearch::choose(int g, int i) {
  const int n = active_[static_cast<std::size_t>(g)];
  std::vector<Candidate> cands;
  for (int k = 0; k < group_rows_; ++k) {
    const int h = g * group_rows_ + k;
    const double base = slots_[static_cast<std::size_t>(h)].lp;
    if (base == kNegInf) continue;
    for (const auto& [logit, v] : top_[static_cast<std::size_t>(h)]) {
      const float wlp = static_cast<float>(logit - row_lse_[static_cast<std::size_t>(h)]);
      cands.push_back({base + logit - row_lse_[static_cast<std::size_t>(h)], h, v, wlp});
    }
  }
  std::sort(cands.begin(), cands.end(), [](const Candidate& a, const Candidate& c) { return a.lp > c.lp; });
  int filled = 0;
  bool best_ends = false, first = true;
  const bool last = i >= max_len_[static_cast<std::size_t>(n)];
  auto& finished = finished_[static_cast<std::size_t>(n)];
  for (const auto& cand : cands) {
    if (filled == B_) break;
    if (cand.tok == text::kEosId && i < o_.min_length && !last) continue;  // too short to end
    if (first) best_ends = cand.tok == text::kEosId;
    first = false;
    if (cand.tok == text::kEosId || last) {
      Slot ended = extend(cand.slot, cand.tok, cand.lp, cand.word_lp);
      Hypothesis hyp{std::move(ended.ids), cand.lp, 0, std::move(ended.word_lp), std::move(ended.attention)};
      hyp.score = final_score(ended, cand.lp, hyp.ids.size() + 1);
      finished.push_back(std::move(hyp));
      continue;
    }
    const int h = g * B_ + filled++;
    src_slot_[static_cast<std::size_t>(h)] = cand.slot;
    next_tok_[static_cast<std::size_t>(h)] = cand.tok;
    next_[static_cast<std::size_t>(h)] = extend(cand.slot, cand.tok, cand.lp, cand.word_lp);
  }
  // Done at the length limit, when nothing is left alive, or when n_best hypotheses have
  // finished and the best candidate of this step ended (no live hypothesis is ahead of it).
  const bool enough = static_cast<int>(finished.size()) >= std::max(o_.n_best, o_.stop_after);
  return last || filled == 0 || (best_ends && enough);
}

bool BeamSearch::compact(const std::vector<bool>& done) {
  const int G = static_cast<int>(active_.size());
  std::vector<int> keep;
  for (int g = 0; g < G; ++g)
    if (!done[static_cast<std::size_t>(g)]) keep.push_back(g);
  if (keep.empty()) return false;
  // Row h of the next step comes from next_'s row row_from[h] (B per group), its state from
  // the current row parent[h], its sentence's source from the group's current row `same`.
  const int H2 = static_cast<int>(keep.size()) * B_;
  std::vector<int> row_from(static_cast<std::size_t>(H2)), parent(static_cast<std::size_t>(H2)),
      same(static_cast<std::size_t>(H2));
  for (std::size_t g2 = 0; g2 < keep.size(); ++g2)
    for (int k = 0; k < B_; ++k) {
      const std::size_t h = g2 * static_cast<std::size_t>(B_) + static_cast<std::size_t>(k);
      row_from[h] = keep[g2] * B_ + k;
      same[h] = keep[g2] * group_rows_ + std::min(k, group_rows_ - 1);  // h itself when no row moves
    }
  for (int h = 0; h < H2; ++h)
    parent[static_cast<std::size_t>(h)] = src_slot_[static_cast<std::size_t>(row_from[static_cast<std::size_t>(h)])];
  for (int m = 0; m < M_; ++m)
    models_[static_cast<std::size_t>(m)]->reorder(*states_[static_cast<std::size_t>(m)], parent, same);
  std::vector<Slot> kept(static_cast<std::size_t>(H2));
  std::vector<std::int32_t> kept_tok(static_cast<std::size_t>(H2)), lengths2(static_cast<std::size_t>(H2));
  for (int h = 0; h < H2; ++h) {
    const auto from = static_cast<std::size_t>(row_from[static_cast<std::size_t>(h)]);
    kept[static_cast<std::size_t>(h)] = std::move(next_[from]);
    kept_tok[static_cast<std::size_t>(h)] = next_tok_[from];
    lengths2[static_cast<std::size_t>(h)] = lengths_[static_cast<std::size_t>(same[static_cast<std::size_t>(h)])];
  }
  slots_ = std::move(kept);
  prev_ = std::move(kept_tok);
  lengths_ = std::move(lengths2);
  if (static_cast<int>(keep.size()) != G) {
    std::vector<int> active2;
    for (int g : keep) active2.push_back(active_[static_cast<std::size_t>(g)]);
    active_ = std::move(active2);
  }
  H_ = H2;
  group_rows_ = B_;
  row_lse_.resize(static_cast<std::size_t>(H_));
  top_.resize(static_cast<std::size_t>(H_));
  return true;
}

std::vector<std::vector<Hypothesis>> BeamSearch::run() {
  for (int i = 0;; ++i) {
    for (int m = 0; m < M_; ++m)
      models_[static_cast<std::size_t>(m)]->step(*states_[static_cast<std::size_t>(m)], prev_.data());
    score_rows();
    const int G = static_cast<int>(active_.size());
    const auto next_rows = static_cast<std::size_t>(G) * static_cast<std::size_t>(B_);
    src_slot_.assign(next_rows, 0);
    next_tok_.assign(next_rows, text::kEosId);
    next_.assign(next_rows, Slot{});
    std::vector<bool> done(static_cast<std::size_t>(G), false);
    for (int g = 0; g < G; ++g) done[static_cast<std::size_t>(g)] = choose(g, i);
    if (!compact(done)) break;
  }
  std::vector<std::vector<Hypothesis>> out(finished_.size());
  for (std::size_t n = 0; n < finished_.size(); ++n) {
    auto& fin = finished_[n];
    std::stable_sort(fin.begin(), fin.end(),
                     [](const Hypothesis& a, const Hypothesis& c) { return a.score > c.score; });
    if (static_cast<int>(fin.size()) > o_.n_best) fin.resize(static_cast<std::size_t>(o_.n_best));
    out[n] = std::move(fin);
  }
  return out;
}

}  // namespace

std::vector<std::vector<Hypothesis>> beam_search(const std::vector<model::Seq2Seq*>& models,
                                                 const model::BatchView& batch, const std::vector<int>& max_len,
                                                 const SearchOptions& options) {
  if (models.empty()) throw ConfigError("beam search needs at least one model");
  return BeamSearch(models, batch, max_len, options).run();
}

}  // namespace gloss::decode
