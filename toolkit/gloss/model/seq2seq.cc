#include "gloss/model/seq2seq.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <cstring>

#include "gloss/tensor/compute.h"
#include "gloss/util/error.h"

namespace gloss::model {
namespace {

constexpr int kPad = 0;

// out[t, n] = in[len_n - 1 - t, n] for t < len_n, else in[t, n]: the sequence of each sentence
// reversed within its own length (its own inverse).
void reverse_within(const float* in, float* out, int S, int N, std::int64_t C, const std::int32_t* lengths) {
  const auto bytes = static_cast<std::size_t>(C) * sizeof(float);
  for (int n = 0; n < N; ++n) {
    const int len = lengths[n];
    for (int t = 0; t < S; ++t) {
      const int from = t < len ? len - 1 - t : t;
      std::memcpy(out + (static_cast<std::int64_t>(t) * N + n) * C, in + (static_cast<std::int64_t>(from) * N + n) * C, bytes);
    }
  }
}

void add(std::int64_t n, const float* x, float* y) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace

void validate(const ModelConfig& c) {
  auto positive = [](std::int64_t v, const char* name) {
    if (v < 1) throw ConfigError(std::string("model.") + name + " must be at least 1 (got " + std::to_string(v) + ")");
  };
  positive(c.src_vocab, "src_vocab");
  positive(c.tgt_vocab, "tgt_vocab");
  positive(c.emb, "emb_dim");
  positive(c.enc_hidden, "enc_hidden");
  positive(c.enc_layers, "enc_layers");
  positive(c.dec_hidden, "dec_hidden");
  positive(c.att, "att_dim");
  positive(c.readout_dim, "readout_dim");
  if (c.bidirectional != "first" && c.bidirectional != "all" && c.bidirectional != "none")
    throw ConfigError("model.bidirectional must be first, all or none (got '" + c.bidirectional + "')");
  if (c.readout != "maxout" && c.readout != "tanh")
    throw ConfigError("model.readout must be maxout or tanh (got '" + c.readout + "')");
  if (c.dec_init != "last_backward" && c.dec_init != "mean" && c.dec_init != "zero")
    throw ConfigError("model.dec_init must be last_backward, mean or zero (got '" + c.dec_init + "')");
  if (c.tie_target_embeddings && c.readout_dim != c.emb)
    throw ConfigError("model.tie_target_embeddings needs model.readout_dim == model.emb_dim");
  for (float p : {c.dropout_emb, c.dropout_rnn, c.dropout_readout})
    if (p < 0 || p >= 1) throw ConfigError("model dropout probabilities must be in [0, 1)");
}

static std::int64_t top_width(const ModelConfig& c) {
  const bool top_bi = c.bidirectional == "all" || (c.bidirectional == "first" && c.enc_layers == 1);
  return top_bi ? 2 * c.enc_hidden : c.enc_hidden;
}

Seq2Seq::Seq2Seq(const ModelConfig& config, nn::ParameterSet& params)
    : config_((validate(config), config)),
      key_dim_(top_width(config)),
      src_emb_(params, "encoder/embedding", config.src_vocab, config.emb, kPad),
      tgt_emb_(params, "decoder/embedding", config.tgt_vocab, config.emb, kPad),
      attention_(params, "decoder/attention", config.dec_hidden, key_dim_, config.att),
      dec_rnn_(params, "decoder/rnn", config.cell, config.emb + key_dim_, config.dec_hidden),
      readout_(params, "decoder/readout", config.dec_hidden + key_dim_ + config.emb,
               config.readout == "maxout" ? 2 * config.readout_dim : config.readout_dim) {
  std::int64_t in = config.emb;
  for (int l = 0; l < config.enc_layers; ++l) {
    EncoderLayer layer;
    const bool bi = config.bidirectional == "all" || (config.bidirectional == "first" && l == 0);
    const std::string name = "encoder/layer" + std::to_string(l);
    layer.fwd = std::make_unique<nn::RnnCell>(params, name + "/l2r", config.cell, in, config.enc_hidden);
    if (bi) layer.bwd = std::make_unique<nn::RnnCell>(params, name + "/r2l", config.cell, in, config.enc_hidden);
    in = bi ? 2 * config.enc_hidden : config.enc_hidden;
    layers_.push_back(std::move(layer));
  }
  if (config.dec_init != "zero") {
    const std::int64_t init_in = config.dec_init == "mean" ? key_dim_ : config.enc_hidden;
    init_ = std::make_unique<nn::Linear>(params, "decoder/init", init_in, config.dec_hidden);
  }
  if (config.tie_target_embeddings) out_bias_ = &params.add("decoder/output/bias", {config.tgt_vocab});
  else out_ = std::make_unique<nn::Linear>(params, "decoder/output", config.readout_dim, config.tgt_vocab);
}

void Seq2Seq::encode(const BatchView& b, Rng* rng, bool training) {
  const int S = b.S, N = b.N;
  const std::int64_t rows = static_cast<std::int64_t>(S) * N, H = config_.enc_hidden;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    EncoderLayer& L = layers_[l];
    std::int64_t C;
    if (l == 0) {
      C = config_.emb;
      L.in.resize({S, N, C});
      src_emb_.forward(rows, b.src, L.in.data());
      if (rng && config_.dropout_emb > 0) {
        L.drop_mask.resize({S, N, C});
        nn::dropout_forward(rows * C, config_.dropout_emb, *rng, L.in.data(), L.drop_mask.data());
      }
    } else {
      L.in = layers_[l - 1].out;
      C = L.in.dim(2);
      if (rng && config_.dropout_rnn > 0) {
        L.drop_mask.resize({S, N, C});
        nn::dropout_forward(rows * C, config_.dropout_rnn, *rng, L.in.data(), L.drop_mask.data());
      }
    }
    L.y_fwd.resize({S, N, H});
    L.fwd->forward(S, N, L.in.data(), nullptr, nullptr, L.y_fwd.data(), nullptr, nullptr,
                   training ? &L.cache_fwd : nullptr);
    if (!L.bwd) {
      L.out = L.y_fwd;
      continue;
    }
    L.in_rev.resize({S, N, C});
    reverse_within(L.in.data(), L.in_rev.data(), S, N, C, b.src_lengths);
    L.y_rev.resize({S, N, H});
    L.bwd->forward(S, N, L.in_rev.data(), nullptr, nullptr, L.y_rev.data(), nullptr, nullptr,
                   training ? &L.cache_bwd : nullptr);
    // out = [y_fwd ; reverse(y_rev)]
    L.out.resize({S, N, 2 * H});
    for (int t = 0; t < S; ++t) {
      for (int n = 0; n < N; ++n) {
        const int len = b.src_lengths[n];
        const int from = t < len ? len - 1 - t : t;
        float* o = L.out.data() + (static_cast<std::int64_t>(t) * N + n) * 2 * H;
        std::memcpy(o, L.y_fwd.data() + (static_cast<std::int64_t>(t) * N + n) * H, static_cast<std::size_t>(H) * sizeof(float));
        std::memcpy(o + H, L.y_rev.data() + (static_cast<std::int64_t>(from) * N + n) * H, static_cast<std::size_t>(H) * sizeof(float));
      }
    }
  }
}

nn::LossSum Seq2Seq::forward_backward(const BatchView& b, float label_smoothing, Rng* rng, bool backward,
                                      float grad_scale) {
  const int S = b.S, N = b.N, T = b.T;
  const std::int64_t E = config_.emb, K = key_dim_, D = config_.dec_hidden, Henc = config_.enc_hidden;
  const std::int64_t R = config_.readout_dim, V = config_.tgt_vocab;
  const std::int64_t M = static_cast<std::int64_t>(T) * N;
  const bool maxout = config_.readout == "maxout";
  const std::int64_t RO = maxout ? 2 * R : R;

  // ---- encoder
  dropout_active_ = rng != nullptr;
  encode(b, rng, backward);
  const Tensor& annotations = layers_.back().out;  // [S, N, K]
  const bool top_bi = layers_.back().bwd != nullptr;

  // ---- initial decoder state
  states_.resize({T + 1, N, D});
  float* s0 = states_.data();
  initial_state(b, s0);

  // ---- decoder steps
  memory_.S = S;
  memory_.N = N;
  memory_.keys = annotations.data();
  memory_.lengths = b.src_lengths;
  attention_.prepare(memory_);
  tgt_emb_out_.resize({T, N, E});
  tgt_emb_.forward(M, b.tgt_in, tgt_emb_out_.data());
  if (rng && config_.dropout_emb > 0) {
    tgt_drop_.resize({T, N, E});
    nn::dropout_forward(M * E, config_.dropout_emb, *rng, tgt_emb_out_.data(), tgt_drop_.data());
  }
  contexts_.resize({T, N, K});
  dec_in_.resize({T, N, E + K});
  if (steps_.size() < static_cast<std::size_t>(T)) steps_.resize(static_cast<std::size_t>(T));
  if (dec_caches_.size() < static_cast<std::size_t>(T)) dec_caches_.resize(static_cast<std::size_t>(T));
  for (int i = 0; i < T; ++i) {
    const float* s_prev = states_.data() + static_cast<std::int64_t>(i) * N * D;
    float* c = contexts_.data() + static_cast<std::int64_t>(i) * N * K;
    attention_.forward(memory_, s_prev, c, steps_[static_cast<std::size_t>(i)]);
    float* x = dec_in_.data() + static_cast<std::int64_t>(i) * N * (E + K);
    for (int n = 0; n < N; ++n) {
      std::memcpy(x + n * (E + K), tgt_emb_out_.data() + (static_cast<std::int64_t>(i) * N + n) * E, static_cast<std::size_t>(E) * sizeof(float));
      std::memcpy(x + n * (E + K) + E, c + n * K, static_cast<std::size_t>(K) * sizeof(float));
    }
    dec_rnn_.forward(1, N, x, s_prev, nullptr, states_.data() + static_cast<std::int64_t>(i + 1) * N * D, nullptr,
                     nullptr, backward ? &dec_caches_[static_cast<std::size_t>(i)] : nullptr);
  }

  // ---- readout and output layer, all steps at once
  const std::int64_t RI = D + K + E;
  readout_in_.resize({M, RI});
  for (std::int64_t r = 0; r < M; ++r) {
    float* x = readout_in_.data() + r * RI;
    std::memcpy(x, states_.data() + static_cast<std::int64_t>(N) * D + r * D, static_cast<std::size_t>(D) * sizeof(float));
    std::memcpy(x + D, contexts_.data() + r * K, static_cast<std::size_t>(K) * sizeof(float));
    std::memcpy(x + D + K, tgt_emb_out_.data() + r * E, static_cast<std::size_t>(E) * sizeof(float));
  }
  readout_pre_.resize({M, RO});
  readout_.forward(M, readout_in_.data(), readout_pre_.data());
  readout_out_.resize({M, R});
  if (maxout) {
    maxout_which_.resize(static_cast<std::size_t>(M * R));
    nn::maxout_forward(M, R, readout_pre_.data(), readout_out_.data(), maxout_which_.data());
  } else {
    std::memcpy(readout_out_.data(), readout_pre_.data(), static_cast<std::size_t>(M * R) * sizeof(float));
    nn::tanh_forward(M * R, readout_out_.data());
  }
  if (rng && config_.dropout_readout > 0) {
    readout_drop_.resize({M, R});
    nn::dropout_forward(M * R, config_.dropout_readout, *rng, readout_out_.data(), readout_drop_.data());
  }
  logits_.resize({M, V});
  if (out_) {
    out_->forward(M, readout_out_.data(), logits_.data());
  } else {
    for (std::int64_t r = 0; r < M; ++r)
      std::memcpy(logits_.data() + r * V, out_bias_->value.data(), static_cast<std::size_t>(V) * sizeof(float));
    compute::gemm(false, true, M, V, R, 1.0f, readout_out_.data(), R, tgt_emb_.table().value.data(), E, 1.0f,
                  logits_.data(), V);
  }
  const nn::LossSum loss =
      nn::softmax_cross_entropy(M, V, logits_.data(), b.tgt_out, kPad, label_smoothing, backward, grad_scale);
  if (!backward) return loss;

  // ================= backward
  const float* dlogits = logits_.data();
  // Backward buffers are members, reused across batches; only accumulators are zeroed.
  Tensor& dt = bwd_dt_;
  dt.resize({M, R});
  if (out_) {
    out_->backward(M, readout_out_.data(), dlogits, dt.data());
  } else {
    compute::gemm(true, false, V, R, M, 1.0f, dlogits, V, readout_out_.data(), R, 1.0f, tgt_emb_.table().grad.data(), E);
    for (std::int64_t r = 0; r < M; ++r) add(V, dlogits + r * V, out_bias_->grad.data());
    compute::gemm(false, false, M, R, V, 1.0f, dlogits, V, tgt_emb_.table().value.data(), E, 0.0f, dt.data(), R);
  }
  if (rng && config_.dropout_readout > 0) nn::dropout_backward(M * R, readout_drop_.data(), dt.data());
  Tensor& dpre = bwd_dpre_;
  dpre.resize({M, RO});
  if (maxout) {
    nn::maxout_backward(M, R, maxout_which_.data(), dt.data(), dpre.data());
  } else {
    // readout_out_ was overwritten by dropout; recompute tanh from the pre-activation.
    for (std::int64_t i = 0; i < M * R; ++i) {
      const float y = std::tanh(readout_pre_[i]);
      dpre[i] = dt[i] * (1.0f - y * y);
    }
  }
  Tensor& dreadout_in = bwd_dreadout_in_;
  dreadout_in.resize({M, RI});
  readout_.backward(M, readout_in_.data(), dpre.data(), dreadout_in.data());

  Tensor &dcontext = bwd_dcontext_, &demb = bwd_demb_, &dkeys = bwd_dkeys_;
  dcontext.resize({T, N, K});  // fully written below
  demb.resize({T, N, E});      // fully written below
  dkeys.resize({S, N, K});
  dkeys.zero();                // accumulated into
  for (std::int64_t r = 0; r < M; ++r) {
    std::memcpy(dcontext.data() + r * K, dreadout_in.data() + r * RI + D, static_cast<std::size_t>(K) * sizeof(float));
    std::memcpy(demb.data() + r * E, dreadout_in.data() + r * RI + D + K, static_cast<std::size_t>(E) * sizeof(float));
  }
  Tensor ds({N, D}), ds_next({N, D}), dh_prev({N, D}), dquery({N, D}), dx({N, E + K});
  ds_next.zero();
  for (int i = T - 1; i >= 0; --i) {
    // ds_i = (readout gradient of s_i) + (what step i + 1 sent back to s_i)
    for (std::int64_t k = 0; k < N * D; ++k)
      ds[k] = dreadout_in[(static_cast<std::int64_t>(i) * N + k / D) * RI + k % D] + ds_next[k];
    dec_rnn_.backward(dec_caches_[static_cast<std::size_t>(i)], ds.data(), nullptr, nullptr, dx.data(), dh_prev.data(),
                      nullptr);
    float* dc = dcontext.data() + static_cast<std::int64_t>(i) * N * K;
    float* de = demb.data() + static_cast<std::int64_t>(i) * N * E;
    for (int n = 0; n < N; ++n) {
      add(E, dx.data() + n * (E + K), de + n * E);
      add(K, dx.data() + n * (E + K) + E, dc + n * K);
    }
    const float* s_prev = states_.data() + static_cast<std::int64_t>(i) * N * D;
    attention_.backward(memory_, s_prev, steps_[static_cast<std::size_t>(i)], dc, dquery.data(), dkeys.data());
    for (std::int64_t k = 0; k < N * D; ++k) ds_next[k] = dh_prev[k] + dquery[k];
  }
  attention_.finish_backward(memory_, dkeys.data());

  // initial state: s0 = tanh(init(x0))
  if (init_) {
    for (std::int64_t k = 0; k < N * D; ++k) ds_next[k] *= 1.0f - s0[k] * s0[k];
    const std::int64_t in = init_->in();
    Tensor dx0({N, in});
    init_->backward(N, init_in_.data(), ds_next.data(), dx0.data());
    for (int n = 0; n < N; ++n) {
      const float* g = dx0.data() + n * in;
      const int len = b.src_lengths[n];
      if (config_.dec_init == "mean") {
        for (int j = 0; j < len; ++j) {
          float* d = dkeys.data() + (static_cast<std::int64_t>(j) * N + n) * K;
          for (std::int64_t k = 0; k < K; ++k) d[k] += g[k] / static_cast<float>(len);
        }
      } else if (top_bi) {
        add(Henc, g, dkeys.data() + static_cast<std::int64_t>(n) * K + Henc);
      } else {
        add(Henc, g, dkeys.data() + (static_cast<std::int64_t>(len - 1) * N + n) * K);
      }
    }
  }

  if (rng && config_.dropout_emb > 0) nn::dropout_backward(M * E, tgt_drop_.data(), demb.data());
  tgt_emb_.backward(M, b.tgt_in, demb.data());
  backward_encoder(b, dkeys);
  return loss;
}

void Seq2Seq::infer_step(nn::AdditiveAttention::Memory& memory, nn::AdditiveAttention::Step& step, int rows,
                         const std::int32_t* prev, const float* s, float* s_next, InferScratch& w) {
  const std::int64_t E = config_.emb, K = key_dim_, D = config_.dec_hidden;
  const std::int64_t R = config_.readout_dim, V = config_.tgt_vocab;
  const bool maxout = config_.readout == "maxout";
  const std::int64_t RO = maxout ? 2 * R : R, RI = D + K + E;
  w.c.resize({rows, K});
  w.emb.resize({rows, E});
  w.x.resize({rows, E + K});
  w.rin.resize({rows, RI});
  w.pre.resize({rows, RO});
  w.t.resize({rows, R});
  w.logits.resize({rows, V});
  w.which.resize(static_cast<std::size_t>(rows * R));
  attention_.forward(memory, s, w.c.data(), step);
  tgt_emb_.forward(rows, prev, w.emb.data());
  for (int h = 0; h < rows; ++h) {
    std::memcpy(w.x.data() + h * (E + K), w.emb.data() + h * E, static_cast<std::size_t>(E) * sizeof(float));
    std::memcpy(w.x.data() + h * (E + K) + E, w.c.data() + h * K, static_cast<std::size_t>(K) * sizeof(float));
  }
  dec_rnn_.forward(1, rows, w.x.data(), s, nullptr, s_next, nullptr, nullptr, nullptr);
  for (int h = 0; h < rows; ++h) {
    float* r = w.rin.data() + h * RI;
    std::memcpy(r, s_next + h * D, static_cast<std::size_t>(D) * sizeof(float));
    std::memcpy(r + D, w.c.data() + h * K, static_cast<std::size_t>(K) * sizeof(float));
    std::memcpy(r + D + K, w.emb.data() + h * E, static_cast<std::size_t>(E) * sizeof(float));
  }
  readout_.forward(rows, w.rin.data(), w.pre.data());
  if (maxout) {
    nn::maxout_forward(rows, R, w.pre.data(), w.t.data(), w.which.data());
  } else {
    std::memcpy(w.t.data(), w.pre.data(), static_cast<std::size_t>(rows * R) * sizeof(float));
    nn::tanh_forward(rows * R, w.t.data());
  }
  if (out_) {
    out_->forward(rows, w.t.data(), w.logits.data());
  } else {
    for (int h = 0; h < rows; ++h)
      std::memcpy(w.logits.data() + h * V, out_bias_->value.data(), static_cast<std::size_t>(V) * sizeof(float));
    compute::gemm(false, true, rows, V, R, 1.0f, w.t.data(), R, tgt_emb_.table().value.data(), E, 1.0f, w.logits.data(), V);
  }
}

void Seq2Seq::initial_state(const BatchView& b, float* s0) {
  const int N = b.N;
  const std::int64_t K = key_dim_, D = config_.dec_hidden, Henc = config_.enc_hidden;
  const Tensor& annotations = layers_.back().out;
  const bool top_bi = layers_.back().bwd != nullptr;
  if (config_.dec_init == "zero") {
    std::memset(s0, 0, static_cast<std::size_t>(N * D) * sizeof(float));
    return;
  }
  const std::int64_t in = init_->in();
  init_in_.resize({N, in});
  for (int n = 0; n < N; ++n) {
    float* x = init_in_.data() + n * in;
    const int len = b.src_lengths[n];
    if (config_.dec_init == "mean") {
      std::memset(x, 0, static_cast<std::size_t>(in) * sizeof(float));
      for (int j = 0; j < len; ++j) add(K, annotations.data() + (static_cast<std::int64_t>(j) * N + n) * K, x);
      for (std::int64_t k = 0; k < K; ++k) x[k] /= static_cast<float>(len);
    } else if (top_bi) {  // <-h_1: the backward RNN's state at the first source word
      std::memcpy(x, annotations.data() + static_cast<std::int64_t>(n) * K + Henc, static_cast<std::size_t>(Henc) * sizeof(float));
    } else {  // ->h_len: the last state of the forward RNN
      std::memcpy(x, annotations.data() + (static_cast<std::int64_t>(len - 1) * N + n) * K, static_cast<std::size_t>(Henc) * sizeof(float));
    }
  }
  init_->forward(N, init_in_.data(), s0);
  nn::tanh_forward(N * D, s0);
}

std::vector<std::vector<std::int32_t>> Seq2Seq::greedy(const BatchView& b, const std::vector<int>& max_len) {
  const int S = b.S, N = b.N;
  const std::int64_t D = config_.dec_hidden, V = config_.tgt_vocab;
  dropout_active_ = false;
  encode(b, nullptr, false);
  const Tensor& annotations = layers_.back().out;
  Tensor s({N, D}), s_next({N, D});
  initial_state(b, s.data());
  nn::AdditiveAttention::Memory memory;
  memory.S = S;
  memory.N = N;
  memory.keys = annotations.data();
  memory.lengths = b.src_lengths;
  attention_.prepare(memory);
  nn::AdditiveAttention::Step step;
  std::vector<std::int32_t> prev(static_cast<std::size_t>(N), 2 /*BOS*/);
  std::vector<std::vector<std::int32_t>> out(static_cast<std::size_t>(N));
  std::vector<bool> done(static_cast<std::size_t>(N), false);
  const int longest = *std::max_element(max_len.begin(), max_len.end());
  InferScratch w;
  for (int i = 0; i < longest; ++i) {
    infer_step(memory, step, N, prev.data(), s.data(), s_next.data(), w);
    const Tensor& logits = w.logits;
    bool all_done = true;
    for (int n = 0; n < N; ++n) {
      const float* row = logits.data() + static_cast<std::int64_t>(n) * V;
      // Never pick padding, BOS or unknown; EOS ends the sentence.
      std::int32_t best = 3;
      for (std::int64_t v = 3; v < V; ++v)
        if (row[v] > row[best]) best = static_cast<std::int32_t>(v);
      if (!done[static_cast<std::size_t>(n)]) {
        if (best == 3 || i >= max_len[static_cast<std::size_t>(n)]) done[static_cast<std::size_t>(n)] = true;
        else out[static_cast<std::size_t>(n)].push_back(best);
      }
      prev[static_cast<std::size_t>(n)] = done[static_cast<std::size_t>(n)] ? 3 : best;
      all_done = all_done && done[static_cast<std::size_t>(n)];
    }
    std::swap(s, s_next);
    if (all_done) break;
  }
  return out;
}

std::vector<std::vector<Seq2Seq::Hypothesis>> Seq2Seq::beam_search(const BatchView& b, const std::vector<int>& max_len,
                                                                     int beam_size, float length_penalty, int n_best) {
  const int S = b.S, N = b.N, B = beam_size;
  const int H = N * B;  // hypothesis slot h = n * B + k
  const std::int64_t K = key_dim_, D = config_.dec_hidden, V = config_.tgt_vocab;
  dropout_active_ = false;
  encode(b, nullptr, false);
  const Tensor& annotations = layers_.back().out;
  Tensor s0({N, D});
  initial_state(b, s0.data());
  // Every hypothesis of sentence n attends over n's annotations: expand keys to [S, N*B, K].
  Tensor keys({S, H, K});
  std::vector<std::int32_t> lengths(static_cast<std::size_t>(H));
  for (int j = 0; j < S; ++j)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < B; ++k)
        std::memcpy(keys.data() + (static_cast<std::int64_t>(j) * H + n * B + k) * K,
                    annotations.data() + (static_cast<std::int64_t>(j) * N + n) * K, static_cast<std::size_t>(K) * sizeof(float));
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < B; ++k) lengths[static_cast<std::size_t>(n * B + k)] = b.src_lengths[n];
  nn::AdditiveAttention::Memory memory;
  memory.S = S;
  memory.N = H;
  memory.keys = keys.data();
  memory.lengths = lengths.data();
  attention_.prepare(memory);
  nn::AdditiveAttention::Step step;

  Tensor s({H, D}), s_next({H, D}), s_sel({H, D});
  for (int h = 0; h < H; ++h)
    std::memcpy(s.data() + static_cast<std::int64_t>(h) * D, s0.data() + static_cast<std::int64_t>(h / B) * D,
                static_cast<std::size_t>(D) * sizeof(float));
  const double neg_inf = -std::numeric_limits<double>::infinity();
  std::vector<double> beam_lp(static_cast<std::size_t>(H), neg_inf);
  for (int n = 0; n < N; ++n) beam_lp[static_cast<std::size_t>(n * B)] = 0.0;  // one live hypothesis to start
  std::vector<std::vector<std::int32_t>> beam_ids(static_cast<std::size_t>(H));
  std::vector<std::int32_t> prev(static_cast<std::size_t>(H), 2 /*BOS*/);
  std::vector<std::vector<Hypothesis>> finished(static_cast<std::size_t>(N));
  std::vector<bool> done(static_cast<std::size_t>(N), false);
  auto normalise = [&](double lp, std::size_t len) {
    return length_penalty == 0.0f ? lp : lp / std::pow(static_cast<double>(std::max<std::size_t>(1, len)), length_penalty);
  };
  const int longest = *std::max_element(max_len.begin(), max_len.end());
  std::vector<double> row_lse(static_cast<std::size_t>(H));
  std::vector<std::vector<std::pair<float, std::int32_t>>> top(static_cast<std::size_t>(H));
  InferScratch w;
  for (int i = 0; i <= longest; ++i) {
    infer_step(memory, step, H, prev.data(), s.data(), s_next.data(), w);
    const Tensor& logits = w.logits;
    // Per live hypothesis, in parallel: log-sum-exp of its row and its 2B best words
    // (pad, unk and bos never chosen). Dead slots (finished sentences, empty beam) are skipped.
#pragma omp parallel for schedule(dynamic, 4)
    for (int h = 0; h < H; ++h) {
      auto& best = top[static_cast<std::size_t>(h)];
      best.clear();
      if (beam_lp[static_cast<std::size_t>(h)] == neg_inf) continue;
      const float* row = logits.data() + static_cast<std::int64_t>(h) * V;
      float mx = row[0];
      for (std::int64_t v = 1; v < V; ++v) mx = std::max(mx, row[v]);
      double sum = 0;
      for (std::int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(row[v] - mx));
      row_lse[static_cast<std::size_t>(h)] = mx + std::log(sum);
      for (std::int64_t v = 3; v < V; ++v) {
        if (static_cast<int>(best.size()) < 2 * B) {
          best.emplace_back(row[v], static_cast<std::int32_t>(v));
          std::push_heap(best.begin(), best.end(), std::greater<>());
        } else if (row[v] > best.front().first) {
          std::pop_heap(best.begin(), best.end(), std::greater<>());
          best.back() = {row[v], static_cast<std::int32_t>(v)};
          std::push_heap(best.begin(), best.end(), std::greater<>());
        }
      }
    }
    // Per sentence: the 2B best continuations (so EOS cannot empty the beam), EOS ones finish.
    std::vector<int> src_slot(static_cast<std::size_t>(H), 0);
    std::vector<std::int32_t> next_tok(static_cast<std::size_t>(H), 3);
    std::vector<double> next_lp(static_cast<std::size_t>(H), neg_inf);
    std::vector<std::vector<std::int32_t>> next_ids(static_cast<std::size_t>(H));
    for (int n = 0; n < N; ++n) {
      if (done[static_cast<std::size_t>(n)]) continue;
      struct Cand {
        double lp;
        int slot;
        std::int32_t tok;
      };
      std::vector<Cand> cands;
      for (int k = 0; k < B; ++k) {
        const int h = n * B + k;
        if (beam_lp[static_cast<std::size_t>(h)] == neg_inf) continue;
        const auto& best = top[static_cast<std::size_t>(h)];
        for (const auto& [logit, v] : best)
          cands.push_back({beam_lp[static_cast<std::size_t>(h)] + logit - row_lse[static_cast<std::size_t>(h)], h, v});
      }
      std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.lp > b.lp; });
      int filled = 0;
      const bool last = i >= max_len[static_cast<std::size_t>(n)];
      for (const auto& cand : cands) {
        if (filled == B) break;
        const auto& ids = beam_ids[static_cast<std::size_t>(cand.slot)];
        if (cand.tok == 3 || last) {
          Hypothesis hyp{ids, cand.lp, 0};
          if (cand.tok != 3) hyp.ids.push_back(cand.tok);
          hyp.score = normalise(hyp.log_prob, hyp.ids.size() + 1);
          finished[static_cast<std::size_t>(n)].push_back(std::move(hyp));
          continue;
        }
        const int h = n * B + filled++;
        src_slot[static_cast<std::size_t>(h)] = cand.slot;
        next_tok[static_cast<std::size_t>(h)] = cand.tok;
        next_lp[static_cast<std::size_t>(h)] = cand.lp;
        next_ids[static_cast<std::size_t>(h)] = ids;
        next_ids[static_cast<std::size_t>(h)].push_back(cand.tok);
      }
      // A sentence is done when its best candidate of this step ends it (no live hypothesis
      // is ahead of it any more), at its length limit, or when nothing is left alive.
      if (last || filled == 0 || (!cands.empty() && cands.front().tok == 3)) done[static_cast<std::size_t>(n)] = true;
      if (done[static_cast<std::size_t>(n)])
        for (int k = 0; k < B; ++k) next_lp[static_cast<std::size_t>(n * B + k)] = neg_inf;
    }
    if (std::all_of(done.begin(), done.end(), [](bool d) { return d; })) break;
    // Reorder states to the selected hypotheses.
    for (int h = 0; h < H; ++h)
      std::memcpy(s_sel.data() + static_cast<std::int64_t>(h) * D,
                  s_next.data() + static_cast<std::int64_t>(src_slot[static_cast<std::size_t>(h)]) * D,
                  static_cast<std::size_t>(D) * sizeof(float));
    std::swap(s, s_sel);
    beam_lp = next_lp;
    beam_ids = std::move(next_ids);
    prev = next_tok;
  }
  std::vector<std::vector<Hypothesis>> out(static_cast<std::size_t>(N));
  for (int n = 0; n < N; ++n) {
    auto& fin = finished[static_cast<std::size_t>(n)];
    std::stable_sort(fin.begin(), fin.end(), [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
    if (static_cast<int>(fin.size()) > n_best) fin.resize(static_cast<std::size_t>(n_best));
    out[static_cast<std::size_t>(n)] = std::move(fin);
  }
  return out;
}

void Seq2Seq::backward_encoder(const BatchView& b, Tensor& dtop) {
  const int S = b.S, N = b.N;
  const std::int64_t rows = static_cast<std::int64_t>(S) * N, H = config_.enc_hidden;
  for (int l = static_cast<int>(layers_.size()) - 1; l >= 0; --l) {
    EncoderLayer& L = layers_[static_cast<std::size_t>(l)];
    const std::int64_t C = L.in.dim(2);
    Tensor dx({S, N, C});
    if (!L.bwd) {
      L.fwd->backward(L.cache_fwd, dtop.data(), nullptr, nullptr, dx.data(), nullptr, nullptr);
    } else {
      Tensor dy_fwd({S, N, H}), dy_rev({S, N, H});
      for (int t = 0; t < S; ++t) {
        for (int n = 0; n < N; ++n) {
          const int len = b.src_lengths[n];
          const int to = t < len ? len - 1 - t : t;
          const float* g = dtop.data() + (static_cast<std::int64_t>(t) * N + n) * 2 * H;
          std::memcpy(dy_fwd.data() + (static_cast<std::int64_t>(t) * N + n) * H, g, static_cast<std::size_t>(H) * sizeof(float));
          std::memcpy(dy_rev.data() + (static_cast<std::int64_t>(to) * N + n) * H, g + H, static_cast<std::size_t>(H) * sizeof(float));
        }
      }
      L.fwd->backward(L.cache_fwd, dy_fwd.data(), nullptr, nullptr, dx.data(), nullptr, nullptr);
      Tensor dx_rev({S, N, C}), dx_back({S, N, C});
      L.bwd->backward(L.cache_bwd, dy_rev.data(), nullptr, nullptr, dx_rev.data(), nullptr, nullptr);
      reverse_within(dx_rev.data(), dx_back.data(), S, N, C, b.src_lengths);
      add(rows * C, dx_back.data(), dx.data());
    }
    if (dropout_active_ && ((l == 0 && config_.dropout_emb > 0) || (l > 0 && config_.dropout_rnn > 0))) {
      nn::dropout_backward(rows * C, L.drop_mask.data(), dx.data());
    }
    if (l == 0) src_emb_.backward(rows, b.src, dx.data());
    else dtop = std::move(dx);
  }
}

}  // namespace gloss::model
