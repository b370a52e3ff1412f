// The decoder one step at a time for the searches of decode/search.h (seq2seq.h's
// DecoderState API): start a batch's rows at the initial state, step them all, advance or
// reorder them as the search keeps hypotheses. Training's teacher-forced decoder is in
// seq2seq.cc.
#include <cstring>
#include <utility>
#include <vector>

#include "gloss/model/seq2seq.h"

namespace gloss::model {

void Seq2Seq::expand_state(const float* s0, int N, int B, float* state) const {
  const std::int64_t D = config_.dec_hidden, rows = static_cast<std::int64_t>(N) * B;
  const int L = config_.dec_layers;
  for (int p = 0; p < state_parts(); ++p) {
    float* part = state + p * rows * D;
    if (p >= L) {
      std::memset(part, 0, static_cast<std::size_t>(rows * D) * sizeof(float));
      continue;
    }
    for (std::int64_t h = 0; h < rows; ++h)
      std::memcpy(part + h * D, s0 + (h / B) * D, static_cast<std::size_t>(D) * sizeof(float));
  }
}

void Seq2Seq::start(DecoderState& c, const BatchView& b, int B) {
  const int S = b.S, N = b.N;
  const std::int64_t D = config_.dec_hidden;
  dropout_active_ = false;
  encode(b, b.src, nullptr, false);
  if (ln_keys_)
    ln_keys_->forward(static_cast<std::int64_t>(S) * N, layers_.back().out.data(), layers_.back().out.data(), nullptr);
  const Tensor& annotations = layers_.back().out;
  Tensor s0({N, D}), init_in;
  initial_state(b, s0.data(), init_in);
  c.S = S;
  c.rows = N * B;
  // The hypotheses of sentence n attend over n's annotations: keys and their projection stay
  // one row per sentence ([S, N, .]; B times less memory and projection work than a row each).
  c.keys = annotations;
  c.lengths.resize(static_cast<std::size_t>(c.rows));
  c.source_of.resize(static_cast<std::size_t>(c.rows));
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < B; ++k) {
      c.lengths[static_cast<std::size_t>(n * B + k)] = b.src_lengths[n];
      c.source_of[static_cast<std::size_t>(n * B + k)] = n;
    }
  c.memory.S = S;
  c.memory.N = N;
  c.memory.queries = c.rows;
  c.memory.keys = c.keys.data();
  c.memory.lengths = c.lengths.data();
  c.memory.source_of = c.source_of.data();
  attention_.prepare(c.memory);
  const int P = state_parts();
  c.s.resize({P, c.rows, D});
  c.s_next.resize({P, c.rows, D});
  expand_state(s0.data(), N, B, c.s.data());
}

// One step of every row into c.s_next, then the readout and output layer into the step's logits.
void Seq2Seq::step(DecoderState& c, const std::int32_t* prev) {
  const std::int64_t E = config_.emb_dim, K = key_dim_, D = config_.dec_hidden;
  const int L = config_.dec_layers, rows = c.rows;
  StepScratch& w = c.scratch;
  w.c.resize({rows, K});
  w.emb.resize({rows, E});
  tgt_emb_.forward(rows, prev, w.emb.data());
  if (conditional())
    conditional_step(c);
  else
    bahdanau_step(c);
  readout_logits(rows, c.s_next.data() + static_cast<std::int64_t>(L - 1) * rows * D, w.c.data(), w.emb.data(), w,
                 bf16_ ? nullptr : &c.packed);
}

void Seq2Seq::cell_step(int l, int rows, const float* x, float* h, float* cs, float* h_out, float* c_out) {
  const auto layer = static_cast<std::size_t>(l);
  if (bf16_) {
    dec_rnn_[layer]->forward(1, rows, x, h, cs, h_out, nullptr, c_out);
    return;
  }
  nn::RnnSteps& steps = decoder_steps()[layer];
  steps.begin(1, rows, x, h, cs);
  steps.forward(0, h_out, c_out);
}

// Attention on the top h, RNN input [E y_prev ; c] (c.scratch.emb holds E y_prev).
void Seq2Seq::bahdanau_step(DecoderState& c) {
  const std::int64_t E = config_.emb_dim, K = key_dim_, D = config_.dec_hidden;
  const int L = config_.dec_layers, rows = c.rows;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  const std::int64_t part = static_cast<std::int64_t>(rows) * D;
  float* state = c.s.data();
  float* state_next = c.s_next.data();
  StepScratch& w = c.scratch;
  w.x.resize({rows, E + K});
  attention_.forward(c.memory, state + (L - 1) * part, w.c.data(), c.att_step);
  for (int h = 0; h < rows; ++h) {
    std::memcpy(w.x.data() + h * (E + K), w.emb.data() + h * E, static_cast<std::size_t>(E) * sizeof(float));
    std::memcpy(w.x.data() + h * (E + K) + E, w.c.data() + h * K, static_cast<std::size_t>(K) * sizeof(float));
  }
  if (ln_dec_in_) ln_dec_in_->forward(rows, w.x.data(), w.x.data(), nullptr);
  for (int l = 0; l < L; ++l) {
    const float* x = l == 0 ? w.x.data() : state_next + (l - 1) * part;
    cell_step(l, rows, x, state + l * part, lstm ? state + (L + l) * part : nullptr, state_next + l * part,
              lstm ? state_next + (L + l) * part : nullptr);
  }
}

// s' = RNN_1(E y_prev, s) into c.scratch.mid, attention on s', s_next = RNN_2(c, s').
void Seq2Seq::conditional_step(DecoderState& c) {
  const int rows = c.rows;
  StepScratch& w = c.scratch;
  w.mid.resize({rows, config_.dec_hidden});
  cell_step(0, rows, w.emb.data(), c.s.data(), nullptr, w.mid.data(), nullptr);
  attention_.forward(c.memory, w.mid.data(), w.c.data(), c.att_step);
  cell_step(1, rows, w.c.data(), w.mid.data(), nullptr, c.s_next.data(), nullptr);
}

void Seq2Seq::advance(DecoderState& c) { std::swap(c.s, c.s_next); }

void Seq2Seq::reorder(DecoderState& c, const std::vector<int>& next_parent, const std::vector<int>& same_sentence) {
  const int H = c.rows, H2 = static_cast<int>(next_parent.size()), P = state_parts();
  const std::int64_t D = config_.dec_hidden;
  c.s_sel.resize({P, H2, D});
  for (int p = 0; p < P; ++p)
    for (int h = 0; h < H2; ++h)
      std::memcpy(c.s_sel.data() + (static_cast<std::int64_t>(p) * H2 + h) * D,
                  c.s_next.data() + (static_cast<std::int64_t>(p) * H + next_parent[static_cast<std::size_t>(h)]) * D,
                  static_cast<std::size_t>(D) * sizeof(float));
  std::swap(c.s, c.s_sel);
  bool same_rows = H2 == H;  // each row still its own sentence's: nothing else changes
  for (int h = 0; same_rows && h < H2; ++h) same_rows = same_sentence[static_cast<std::size_t>(h)] == h;
  if (same_rows) return;
  // The new rows' sentences and lengths (keys and their projection stay as they are).
  std::vector<std::int32_t> lengths2(static_cast<std::size_t>(H2)), source2(static_cast<std::size_t>(H2));
  for (int h = 0; h < H2; ++h) {
    const auto from = static_cast<std::size_t>(same_sentence[static_cast<std::size_t>(h)]);
    lengths2[static_cast<std::size_t>(h)] = c.lengths[from];
    source2[static_cast<std::size_t>(h)] = c.source_of[from];
  }
  c.lengths = std::move(lengths2);
  c.source_of = std::move(source2);
  c.memory.lengths = c.lengths.data();
  c.memory.source_of = c.source_of.data();
  c.memory.queries = H2;
  c.rows = H2;
  c.s_next.resize({P, H2, D});
}

}  // namespace gloss::model
