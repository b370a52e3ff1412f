#include "gloss/model/seq2seq.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <cstring>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/error.h"

namespace gloss::model {
namespace {

constexpr int kPad = 0;
constexpr std::int64_t kOutputChunkRows = 128;   // rows of logits computed at once in training

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
  positive(c.dec_layers, "dec_layers");
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

// Registered right after the attention (the order parameters are initialised in).
static std::vector<std::unique_ptr<nn::RnnCell>> decoder_layers(nn::ParameterSet& params, const ModelConfig& c,
                                                                std::int64_t key_dim) {
  std::vector<std::unique_ptr<nn::RnnCell>> layers;
  for (int l = 0; l < c.dec_layers; ++l)
    layers.push_back(std::make_unique<nn::RnnCell>(params, l == 0 ? "decoder/rnn" : "decoder/rnn" + std::to_string(l),
                                                   c.cell, l == 0 ? c.emb + key_dim : c.dec_hidden, c.dec_hidden));
  return layers;
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
      dec_rnn_(decoder_layers(params, config, key_dim_)),
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
  std::size_t cells = 0;
  for (const auto& L : layers_) cells += L.bwd ? 2 : 1;
  const std::size_t cell_budget = std::max<std::size_t>(1, rnn_cache_bytes_ / 2 / cells);
  for (auto& L : layers_) L.cache_fwd.budget = L.cache_bwd.budget = cell_budget;
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

  // ---- initial decoder state: every layer's h starts at s_0, LSTM cells at zero
  const int L = config_.dec_layers;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  const std::int64_t ND = static_cast<std::int64_t>(N) * D;
  dec_h_.resize(static_cast<std::size_t>(L));
  dec_c_.resize(lstm ? static_cast<std::size_t>(L) : 0);
  for (int l = 0; l < L; ++l) {
    dec_h_[static_cast<std::size_t>(l)].resize({T + 1, N, D});
    if (lstm) {
      dec_c_[static_cast<std::size_t>(l)].resize({T + 1, N, D});
      std::memset(dec_c_[static_cast<std::size_t>(l)].data(), 0, static_cast<std::size_t>(ND) * sizeof(float));
    }
  }
  float* s0 = dec_h_[0].data();
  initial_state(b, s0);
  for (int l = 1; l < L; ++l) std::memcpy(dec_h_[static_cast<std::size_t>(l)].data(), s0, static_cast<std::size_t>(ND) * sizeof(float));
  Tensor& top = dec_h_[static_cast<std::size_t>(L - 1)];

  // ---- decoder steps
  memory_.S = S;
  memory_.N = N;
  memory_.keys = annotations.data();
  memory_.lengths = b.src_lengths;
  attention_.prepare(memory_);
  tgt_in_used_.assign(b.tgt_in, b.tgt_in + M);
  tgt_emb_out_.resize({T, N, E});
  tgt_emb_.forward(M, b.tgt_in, tgt_emb_out_.data());
  const bool emb_dropout = rng && config_.dropout_emb > 0;
  if (emb_dropout) {
    tgt_drop_.resize({T, N, E});
    nn::dropout_forward(M * E, config_.dropout_emb, *rng, tgt_emb_out_.data(), tgt_drop_.data());
  }
  const bool sampling = rng && teacher_forcing_ < 1.0f;
  contexts_.resize({T, N, K});
  dec_in_.resize({T, N, E + K});
  if (steps_.size() < static_cast<std::size_t>(T)) steps_.resize(static_cast<std::size_t>(T));
  // Steps 0..cached-1 keep their oneDNN workspaces for backward; later steps share one and are
  // recomputed in backward (bounded memory for long batches).
  int cached = 0;
  if (backward) {
    std::size_t per_step = 0;
    for (auto& cell : dec_rnn_) per_step += cell->training_cache_bytes(1, N);
    cached = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(T), rnn_cache_bytes_ / 2 / std::max<std::size_t>(1, per_step)));
    dec_caches_.resize(static_cast<std::size_t>(L));
    for (auto& caches : dec_caches_)
      if (caches.size() < static_cast<std::size_t>(cached)) caches.resize(static_cast<std::size_t>(cached));
  }
  auto layer_input = [&](int l, int i) -> const float* {
    return l == 0 ? dec_in_.data() + static_cast<std::int64_t>(i) * N * (E + K)
                  : dec_h_[static_cast<std::size_t>(l - 1)].data() + static_cast<std::int64_t>(i + 1) * ND;
  };
  // Layer l at step i: reads its state at row i, writes h (and c) to `h_out`, `c_out`.
  auto run_layer = [&](int l, int i, nn::RnnCell::Cache* cache, float* h_out, float* c_out) {
    const auto li = static_cast<std::size_t>(l);
    dec_rnn_[li]->forward(1, N, layer_input(l, i), dec_h_[li].data() + i * ND,
                          lstm ? dec_c_[li].data() + i * ND : nullptr, h_out, nullptr, c_out, cache);
  };
  for (int i = 0; i < T; ++i) {
    const float* s_prev = top.data() + i * ND;
    float* c = contexts_.data() + static_cast<std::int64_t>(i) * N * K;
    attention_.forward(memory_, s_prev, c, steps_[static_cast<std::size_t>(i)]);
    float* x = dec_in_.data() + static_cast<std::int64_t>(i) * N * (E + K);
    for (int n = 0; n < N; ++n) {
      std::memcpy(x + n * (E + K), tgt_emb_out_.data() + (static_cast<std::int64_t>(i) * N + n) * E, static_cast<std::size_t>(E) * sizeof(float));
      std::memcpy(x + n * (E + K) + E, c + n * K, static_cast<std::size_t>(K) * sizeof(float));
    }
    for (int l = 0; l < L; ++l) {
      const auto li = static_cast<std::size_t>(l);
      nn::RnnCell::Cache* cache = !backward ? nullptr : i < cached ? &dec_caches_[li][static_cast<std::size_t>(i)] : &dec_recompute_;
      run_layer(l, i, cache, dec_h_[li].data() + (i + 1) * ND, lstm ? dec_c_[li].data() + (i + 1) * ND : nullptr);
    }
    if (sampling && i + 1 < T) {
      // The model's own choice after step i, fed to step i + 1 where the coin says so.
      readout_logits(N, top.data() + (i + 1) * ND, c, tgt_emb_out_.data() + static_cast<std::int64_t>(i) * N * E, sample_w_);
      for (int n = 0; n < N; ++n) {
        const std::int64_t at = static_cast<std::int64_t>(i + 1) * N + n;
        if (b.tgt_in[at] == kPad || rng->uniform() < teacher_forcing_) continue;
        const float* row = sample_w_.logits.data() + static_cast<std::int64_t>(n) * V;
        std::int32_t best = 3;
        for (std::int64_t v = 4; v < V; ++v)
          if (row[v] > row[best]) best = static_cast<std::int32_t>(v);
        tgt_in_used_[static_cast<std::size_t>(at)] = best;
        float* e = tgt_emb_out_.data() + at * E;
        tgt_emb_.forward(1, &best, e);
        if (emb_dropout)
          for (std::int64_t k = 0; k < E; ++k) e[k] *= tgt_drop_[at * E + k];
      }
    }
  }

  // ---- readout for all steps at once, on [s_i ; c_i ; e_i] without building the concatenation
  const std::vector<nn::Linear::Part> readout_parts = {
      {top.data() + ND, D}, {contexts_.data(), K}, {tgt_emb_out_.data(), E}};
  readout_pre_.resize({M, RO});
  readout_.forward_parts(M, readout_parts, readout_pre_.data());
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

  // ---- output layer and loss (and their backward) in chunks of rows: the logits of a whole
  // batch (rows x vocabulary) would be the largest buffer of a training step.
  Tensor& dt = bwd_dt_;
  if (backward) dt.resize({M, R});
  nn::LossSum loss;
  for (std::int64_t r0 = 0; r0 < M; r0 += kOutputChunkRows) {
    const std::int64_t rows = std::min(kOutputChunkRows, M - r0);
    const float* t = readout_out_.data() + r0 * R;
    logits_.resize({rows, V});
    if (out_) {
      out_->forward(rows, t, logits_.data());
    } else {
      for (std::int64_t r = 0; r < rows; ++r)
        std::memcpy(logits_.data() + r * V, out_bias_->value.data(), static_cast<std::size_t>(V) * sizeof(float));
      compute::gemm(false, true, rows, V, R, 1.0f, t, R, tgt_emb_.table().value.data(), E, 1.0f, logits_.data(), V);
    }
    const nn::LossSum part =
        nn::softmax_cross_entropy(rows, V, logits_.data(), b.tgt_out + r0, kPad, label_smoothing, backward, grad_scale);
    loss.loss += part.loss;
    loss.nll += part.nll;
    loss.tokens += part.tokens;
    if (!backward) continue;
    const float* dlogits = logits_.data();
    if (out_) {
      out_->backward(rows, t, dlogits, dt.data() + r0 * R);
    } else {
      compute::gemm(true, false, V, R, rows, 1.0f, dlogits, V, t, R, 1.0f, tgt_emb_.table().grad.data(), E);
      for (std::int64_t r = 0; r < rows; ++r) add(V, dlogits + r * V, out_bias_->grad.data());
      compute::gemm(false, false, rows, R, V, 1.0f, dlogits, V, tgt_emb_.table().value.data(), E, 0.0f, dt.data() + r0 * R, R);
    }
  }
  if (!backward) return loss;

  // ================= backward
  // Backward buffers are members, reused across batches; only accumulators are zeroed.
  if (rng && config_.dropout_readout > 0) nn::dropout_backward(M * R, readout_drop_.data(), dt.data());
  Tensor& dpre = readout_pre_;  // the pre-activations become their gradient, in place
  if (maxout) {
    nn::maxout_backward(M, R, maxout_which_.data(), dt.data(), dpre.data());
  } else {
    // readout_out_ was overwritten by dropout; recompute tanh from the pre-activation.
    for (std::int64_t i = 0; i < M * R; ++i) {
      const float y = std::tanh(readout_pre_[i]);
      dpre[i] = dt[i] * (1.0f - y * y);  // same element: in place is safe
    }
  }
  Tensor &ds_readout = bwd_ds_readout_, &dcontext = bwd_dcontext_, &demb = bwd_demb_, &dkeys = bwd_dkeys_;
  ds_readout.resize({T, N, D});
  dcontext.resize({T, N, K});
  demb.resize({T, N, E});
  readout_.backward_parts(M, readout_parts, dpre.data(), {ds_readout.data(), dcontext.data(), demb.data()});
  dkeys.resize({S, N, K});
  dkeys.zero();                // accumulated into
  // dh_next[l], dc_next[l]: what step i + 1 sent back to layer l's state after step i.
  std::vector<Tensor> dh_next(static_cast<std::size_t>(L)), dc_next(lstm ? static_cast<std::size_t>(L) : 0);
  for (auto& g : dh_next) g.resize({N, D}), g.zero();
  for (auto& g : dc_next) g.resize({N, D}), g.zero();
  Tensor dy({N, D}), dx0({N, E + K}), dxl({N, D}), dh_prev({N, D}), dc_prev({N, D}), dquery({N, D});
  Tensor h_tmp({N, D}), c_tmp({N, D});
  Tensor& da = bwd_da_;  // the attention's gradient of W s + b at every step, for one GEMM at the end
  da.resize({T, N, attention_.att_dim()});
  attention_.begin_backward(memory_);
  for (int i = T - 1; i >= 0; --i) {
    for (int l = L - 1; l >= 0; --l) {
      const auto li = static_cast<std::size_t>(l);
      // dy = (readout gradient of s_i, or the layer above's input gradient) + recurrent gradient
      const float* from_above = l == L - 1 ? nullptr : dxl.data();
      for (std::int64_t k = 0; k < ND; ++k)
        dy[k] = dh_next[li][k] + (from_above ? from_above[k] : ds_readout[i * ND + k]);
      nn::RnnCell::Cache* cache = &dec_recompute_;
      if (i < cached) cache = &dec_caches_[li][static_cast<std::size_t>(i)];
      else {
        const compute::UncountedFlops recompute;  // the workspace again: memory bound, not model work
        run_layer(l, i, cache, h_tmp.data(), lstm ? c_tmp.data() : nullptr);
      }
      dec_rnn_[li]->backward(*cache, dy.data(), nullptr, lstm ? dc_next[li].data() : nullptr,
                             l == 0 ? dx0.data() : dxl.data(), dh_prev.data(), lstm ? dc_prev.data() : nullptr);
      std::swap(dh_next[li], dh_prev);
      if (lstm) std::swap(dc_next[li], dc_prev);
    }
    float* dc = dcontext.data() + static_cast<std::int64_t>(i) * N * K;
    float* de = demb.data() + static_cast<std::int64_t>(i) * N * E;
    for (int n = 0; n < N; ++n) {
      add(E, dx0.data() + n * (E + K), de + n * E);
      add(K, dx0.data() + n * (E + K) + E, dc + n * K);
    }
    attention_.backward(memory_, steps_[static_cast<std::size_t>(i)], dc, da.data() + i * N * attention_.att_dim(),
                        dquery.data(), dkeys.data());
    add(ND, dquery.data(), dh_next[static_cast<std::size_t>(L - 1)].data());
  }
  attention_.finish_backward(memory_, M, top.data(), da.data(), dkeys.data());

  // initial state: every layer's h0 is s0 = tanh(init(x0))
  Tensor& ds_next = dh_next[0];
  for (int l = 1; l < L; ++l) add(ND, dh_next[static_cast<std::size_t>(l)].data(), ds_next.data());
  if (init_) {
    for (std::int64_t k = 0; k < N * D; ++k) ds_next[k] *= 1.0f - s0[k] * s0[k];
    const std::int64_t in = init_->in();
    Tensor dinit({N, in});
    init_->backward(N, init_in_.data(), ds_next.data(), dinit.data());
    for (int n = 0; n < N; ++n) {
      const float* g = dinit.data() + n * in;
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

  if (emb_dropout) nn::dropout_backward(M * E, tgt_drop_.data(), demb.data());
  tgt_emb_.backward(M, tgt_in_used_.data(), demb.data());
  backward_encoder(b, dkeys);
  return loss;
}

void Seq2Seq::readout_logits(int rows, const float* s, const float* c, const float* emb, InferScratch& w) {
  const std::int64_t E = config_.emb, K = key_dim_, D = config_.dec_hidden;
  const std::int64_t R = config_.readout_dim, V = config_.tgt_vocab;
  const bool maxout = config_.readout == "maxout";
  const std::int64_t RO = maxout ? 2 * R : R, RI = D + K + E;
  w.rin.resize({rows, RI});
  w.pre.resize({rows, RO});
  w.t.resize({rows, R});
  w.logits.resize({rows, V});
  w.which.resize(static_cast<std::size_t>(rows * R));
  for (int h = 0; h < rows; ++h) {
    float* r = w.rin.data() + h * RI;
    std::memcpy(r, s + h * D, static_cast<std::size_t>(D) * sizeof(float));
    std::memcpy(r + D, c + h * K, static_cast<std::size_t>(K) * sizeof(float));
    std::memcpy(r + D + K, emb + h * E, static_cast<std::size_t>(E) * sizeof(float));
  }
  if (bf16_) readout_bf16_.run(rows, w.rin.data(), w.pre.data());
  else readout_.forward(rows, w.rin.data(), w.pre.data());
  if (maxout) {
    nn::maxout_forward(rows, R, w.pre.data(), w.t.data(), w.which.data());
  } else {
    std::memcpy(w.t.data(), w.pre.data(), static_cast<std::size_t>(rows * R) * sizeof(float));
    nn::tanh_forward(rows * R, w.t.data());
  }
  if (!out_subset_.empty()) {
    const auto Vs = static_cast<std::int64_t>(out_subset_.size());
    w.logits.resize({rows, Vs});
    if (bf16_) {
      out_sub_bf16_.run(rows, w.t.data(), w.logits.data());
      return;
    }
    for (int h = 0; h < rows; ++h)
      std::memcpy(w.logits.data() + h * Vs, out_b_sub_.data(), static_cast<std::size_t>(Vs) * sizeof(float));
    if (out_) compute::gemm(false, false, rows, Vs, R, 1.0f, w.t.data(), R, out_w_sub_.data(), Vs, 1.0f, w.logits.data(), Vs);
    else compute::gemm(false, true, rows, Vs, R, 1.0f, w.t.data(), R, out_w_sub_.data(), E, 1.0f, w.logits.data(), Vs);
    return;
  }
  if (bf16_) {
    out_bf16_.run(rows, w.t.data(), w.logits.data());
  } else if (out_) {
    out_->forward(rows, w.t.data(), w.logits.data());
  } else {
    for (int h = 0; h < rows; ++h)
      std::memcpy(w.logits.data() + h * V, out_bias_->value.data(), static_cast<std::size_t>(V) * sizeof(float));
    compute::gemm(false, true, rows, V, R, 1.0f, w.t.data(), R, tgt_emb_.table().value.data(), E, 1.0f, w.logits.data(), V);
  }
}

void Seq2Seq::share_backward_weights_of(Seq2Seq& master) {
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    layers_[l].fwd->share_backward_weights_of(master.layers_[l].fwd.get());
    if (layers_[l].bwd) layers_[l].bwd->share_backward_weights_of(master.layers_[l].bwd.get());
  }
  for (std::size_t l = 0; l < dec_rnn_.size(); ++l) dec_rnn_[l]->share_backward_weights_of(master.dec_rnn_[l].get());
}

void Seq2Seq::prepare_backward() {
  for (auto& layer : layers_) {
    layer.fwd->refresh_backward_weights();
    if (layer.bwd) layer.bwd->refresh_backward_weights();
  }
  for (auto& cell : dec_rnn_) cell->refresh_backward_weights();
}

void Seq2Seq::set_bf16(bool on) {
  bf16_ = on;
  readout_bf16_ = {};
  out_bf16_ = {};
  out_sub_bf16_ = {};
  if (!on) return;
  if (!compute::has_bf16())
    throw ConfigError("bf16 needs a CPU with AVX512-BF16 instructions, which this one lacks; use f32");
  const std::int64_t R = config_.readout_dim, V = config_.tgt_vocab, E = config_.emb;
  readout_bf16_.set_weights(readout_.in(), readout_.out(), readout_.weight().value.data(), false,
                            readout_.bias() ? readout_.bias()->value.data() : nullptr);
  if (out_) out_bf16_.set_weights(R, V, out_->weight().value.data(), false, out_->bias()->value.data());
  else out_bf16_.set_weights(E, V, tgt_emb_.table().value.data(), true, out_bias_->value.data());
  if (!out_subset_.empty()) set_output_subset(out_subset_);
}

void Seq2Seq::set_output_subset(std::vector<std::int32_t> ids) {
  out_subset_ = std::move(ids);
  if (out_subset_.empty()) return;
  const std::int64_t R = config_.readout_dim, E = config_.emb, V = config_.tgt_vocab;
  const auto Vs = static_cast<std::int64_t>(out_subset_.size());
  for (auto id : out_subset_)
    if (id < 0 || id >= V) throw ConfigError("output subset id " + std::to_string(id) + " is outside the vocabulary");
  out_b_sub_.resize({Vs});
  if (out_) {
    const float* W = out_->weight().value.data();  // [R, V]
    const float* b = out_->bias()->value.data();
    out_w_sub_.resize({R, Vs});
    for (std::int64_t r = 0; r < R; ++r)
      for (std::int64_t k = 0; k < Vs; ++k) out_w_sub_[r * Vs + k] = W[r * V + out_subset_[static_cast<std::size_t>(k)]];
    for (std::int64_t k = 0; k < Vs; ++k) out_b_sub_[k] = b[out_subset_[static_cast<std::size_t>(k)]];
  } else {
    const float* table = tgt_emb_.table().value.data();  // [V, E]
    out_w_sub_.resize({Vs, E});
    for (std::int64_t k = 0; k < Vs; ++k)
      std::memcpy(out_w_sub_.data() + k * E, table + out_subset_[static_cast<std::size_t>(k)] * E, static_cast<std::size_t>(E) * sizeof(float));
    for (std::int64_t k = 0; k < Vs; ++k) out_b_sub_[k] = out_bias_->value[out_subset_[static_cast<std::size_t>(k)]];
  }
  if (bf16_) {
    if (out_) out_sub_bf16_.set_weights(R, Vs, out_w_sub_.data(), false, out_b_sub_.data());
    else out_sub_bf16_.set_weights(E, Vs, out_w_sub_.data(), true, out_b_sub_.data());
  }
}

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

void Seq2Seq::infer_step(nn::AdditiveAttention::Memory& memory, nn::AdditiveAttention::Step& step, int rows,
                         const std::int32_t* prev, const float* state, float* state_next, InferScratch& w) {
  const std::int64_t E = config_.emb, K = key_dim_, D = config_.dec_hidden;
  const int L = config_.dec_layers;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  const std::int64_t part = static_cast<std::int64_t>(rows) * D;
  w.c.resize({rows, K});
  w.emb.resize({rows, E});
  w.x.resize({rows, E + K});
  attention_.forward(memory, state + (L - 1) * part, w.c.data(), step);
  tgt_emb_.forward(rows, prev, w.emb.data());
  for (int h = 0; h < rows; ++h) {
    std::memcpy(w.x.data() + h * (E + K), w.emb.data() + h * E, static_cast<std::size_t>(E) * sizeof(float));
    std::memcpy(w.x.data() + h * (E + K) + E, w.c.data() + h * K, static_cast<std::size_t>(K) * sizeof(float));
  }
  for (int l = 0; l < L; ++l) {
    const float* x = l == 0 ? w.x.data() : state_next + (l - 1) * part;
    dec_rnn_[static_cast<std::size_t>(l)]->forward(1, rows, x, state + l * part, lstm ? state + (L + l) * part : nullptr,
                                                   state_next + l * part, nullptr,
                                                   lstm ? state_next + (L + l) * part : nullptr, nullptr);
  }
  readout_logits(rows, state_next + (L - 1) * part, w.c.data(), w.emb.data(), w);
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
  if (!out_subset_.empty()) throw ConfigError("greedy search runs over the whole vocabulary; clear the output subset");
  const int S = b.S, N = b.N;
  const std::int64_t D = config_.dec_hidden, V = config_.tgt_vocab;
  dropout_active_ = false;
  encode(b, nullptr, false);
  const Tensor& annotations = layers_.back().out;
  Tensor s0({N, D}), s({state_parts(), N, D}), s_next({state_parts(), N, D});
  initial_state(b, s0.data());
  expand_state(s0.data(), N, 1, s.data());
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

void Seq2Seq::search_start(Search& c, const BatchView& b, int B) {
  const int S = b.S, N = b.N;
  const std::int64_t D = config_.dec_hidden;
  dropout_active_ = false;
  encode(b, nullptr, false);
  const Tensor& annotations = layers_.back().out;
  Tensor s0({N, D});
  initial_state(b, s0.data());
  c.S = S;
  c.H = N * B;
  // The hypotheses of sentence n attend over n's annotations: keys and their projection stay
  // one row per sentence ([S, N, .]; B times less memory and projection work than a row each).
  c.keys = annotations;
  c.lengths.resize(static_cast<std::size_t>(c.H));
  c.source_of.resize(static_cast<std::size_t>(c.H));
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < B; ++k) {
      c.lengths[static_cast<std::size_t>(n * B + k)] = b.src_lengths[n];
      c.source_of[static_cast<std::size_t>(n * B + k)] = n;
    }
  c.memory.S = S;
  c.memory.N = N;
  c.memory.queries = c.H;
  c.memory.keys = c.keys.data();
  c.memory.lengths = c.lengths.data();
  c.memory.source_of = c.source_of.data();
  attention_.prepare(c.memory);
  const int P = state_parts();
  c.s.resize({P, c.H, D});
  c.s_next.resize({P, c.H, D});
  expand_state(s0.data(), N, B, c.s.data());
}

void Seq2Seq::search_step(Search& c, const std::int32_t* prev) {
  infer_step(c.memory, c.step, c.H, prev, c.s.data(), c.s_next.data(), c.w);
}

void Seq2Seq::search_select(Search& c, const std::vector<int>& next_parent, const std::vector<int>& same_sentence) {
  const int H = c.H, H2 = static_cast<int>(next_parent.size()), P = state_parts();
  const std::int64_t D = config_.dec_hidden;
  c.s_sel.resize({P, H2, D});
  for (int p = 0; p < P; ++p)
    for (int h = 0; h < H2; ++h)
      std::memcpy(c.s_sel.data() + (static_cast<std::int64_t>(p) * H2 + h) * D,
                  c.s_next.data() + (static_cast<std::int64_t>(p) * H + next_parent[static_cast<std::size_t>(h)]) * D,
                  static_cast<std::size_t>(D) * sizeof(float));
  std::swap(c.s, c.s_sel);
  if (H2 == H) return;
  // The remaining rows' sentences and lengths (keys and their projection stay as they are).
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
  c.H = H2;
  c.s_next.resize({P, H2, D});
}

std::vector<std::vector<Seq2Seq::Hypothesis>> Seq2Seq::beam_search(const BatchView& b, const std::vector<int>& max_len,
                                                                     const SearchOptions& o) {
  return beam_search(std::vector<Seq2Seq*>{this}, b, max_len, o);
}

std::vector<std::vector<Seq2Seq::Hypothesis>> Seq2Seq::beam_search(const std::vector<Seq2Seq*>& models, const BatchView& b,
                                                                     const std::vector<int>& max_len, const SearchOptions& o) {
  const int N = b.N, B = o.beam_size, M = static_cast<int>(models.size());
  const std::int64_t V = models[0]->config_.tgt_vocab;
  for (auto* m : models)
    if (m->out_subset_ != models[0]->out_subset_) throw ConfigError("the models of an ensemble need the same output subset");
  if (!models[0]->out_subset_.empty() && !o.allowed)
    throw ConfigError("beam search with an output subset needs the allowed columns of each sentence");
  for (auto* m : models)
    if (m->config_.tgt_vocab != V || m->config_.src_vocab != models[0]->config_.src_vocab)
      throw ConfigError("the models of an ensemble need the same vocabularies");
  const bool track_attention = o.attention || o.coverage_penalty != 0.0f;
  std::vector<Search> ctx(static_cast<std::size_t>(M));
  for (int m = 0; m < M; ++m) models[static_cast<std::size_t>(m)]->search_start(ctx[static_cast<std::size_t>(m)], b, B);
  // Rows h = g * B + k: hypothesis k of active sentence group g (active[g] is its sentence).
  std::vector<int> active(static_cast<std::size_t>(N));
  std::iota(active.begin(), active.end(), 0);
  int H = N * B;
  std::vector<std::int32_t> lengths(ctx[0].lengths);  // source length of each row

  const double neg_inf = -std::numeric_limits<double>::infinity();
  struct Slot {
    double lp = -std::numeric_limits<double>::infinity();  // -inf: empty slot
    std::vector<std::int32_t> ids;
    std::vector<float> word_lp, attention, coverage;
  };
  std::vector<Slot> slots(static_cast<std::size_t>(H));
  for (int n = 0; n < N; ++n) {
    Slot& first = slots[static_cast<std::size_t>(n * B)];
    first.lp = 0.0;  // one live hypothesis to start
    if (o.coverage_penalty != 0.0f) first.coverage.assign(static_cast<std::size_t>(b.src_lengths[n]), 0.0f);
  }
  std::vector<std::int32_t> prev(static_cast<std::size_t>(H), 2 /*BOS*/);
  std::vector<std::vector<Hypothesis>> finished(static_cast<std::size_t>(N));
  auto final_score = [&](const Slot& slot, double lp, std::size_t len) {
    double score = o.length_penalty == 0.0f ? lp
                                            : lp / std::pow(static_cast<double>(std::max<std::size_t>(1, len)), o.length_penalty);
    if (o.coverage_penalty != 0.0f) {
      double cp = 0;
      for (float c : slot.coverage) cp += std::log(std::min(1.0, std::max(1e-10, static_cast<double>(c))));
      score += o.coverage_penalty * cp;
    }
    return score;
  };
  std::vector<double> row_lse(static_cast<std::size_t>(H));
  std::vector<std::vector<std::pair<float, std::int32_t>>> top(static_cast<std::size_t>(H));
  std::vector<float> mixed;  // ensembles: mean log-probabilities [H, V]
  Tensor alpha_mean;         // ensembles: mean attention [S, H]
  for (int i = 0;; ++i) {
    for (int m = 0; m < M; ++m) models[static_cast<std::size_t>(m)]->search_step(ctx[static_cast<std::size_t>(m)], prev.data());
    const int S = ctx[0].S;
    const float* alpha = ctx[0].step.alpha.data();  // [S, H]
    if (M > 1 && track_attention) {
      alpha_mean.resize({S, H});
      alpha_mean.zero();
      for (auto& c : ctx)
        for (std::int64_t k = 0; k < static_cast<std::int64_t>(S) * H; ++k) alpha_mean[k] += c.step.alpha[k] / static_cast<float>(M);
      alpha = alpha_mean.data();
    }
    const std::int64_t Vc = ctx[0].w.logits.dim(1);  // output columns (V, or a shortlist's size)
    if (M > 1) mixed.resize(static_cast<std::size_t>(H) * static_cast<std::size_t>(Vc));
    // Per live hypothesis, in parallel: log-sum-exp of its row (one model) or the mean of the
    // models' log-probabilities (ensemble), and its 2B best words (pad, unk and bos never chosen).
#pragma omp parallel for schedule(dynamic, 4)
    for (int h = 0; h < H; ++h) {
      auto& best = top[static_cast<std::size_t>(h)];
      best.clear();
      if (slots[static_cast<std::size_t>(h)].lp == neg_inf) continue;
      // With a shortlist, only the sentence's own columns count (normalised over them).
      const std::vector<std::int32_t>* cols =
          o.allowed ? &(*o.allowed)[static_cast<std::size_t>(active[static_cast<std::size_t>(h / B)])] : nullptr;
      auto lse_of = [Vc, cols](const float* row) {
        return cols ? kernels::log_sum_exp(static_cast<std::int64_t>(cols->size()), cols->data(), row)
                    : kernels::log_sum_exp(Vc, row);
      };
      const float* row;
      if (M == 1) {
        row = ctx[0].w.logits.data() + static_cast<std::int64_t>(h) * Vc;
        row_lse[static_cast<std::size_t>(h)] = lse_of(row);
      } else {
        float* mix = mixed.data() + static_cast<std::int64_t>(h) * Vc;
        std::fill(mix, mix + Vc, 0.0f);
        for (auto& c : ctx) {
          const float* r = c.w.logits.data() + static_cast<std::int64_t>(h) * Vc;
          const double lse = lse_of(r);
          for (std::int64_t v = 0; v < Vc; ++v) mix[v] += static_cast<float>((r[v] - lse) / M);
        }
        row = mix;
        row_lse[static_cast<std::size_t>(h)] = 0.0;
      }
      auto consider = [&](float value, std::int32_t word) {
        if (static_cast<int>(best.size()) < 2 * B) {
          best.emplace_back(value, word);
          std::push_heap(best.begin(), best.end(), std::greater<>());
        } else if (value > best.front().first) {
          std::pop_heap(best.begin(), best.end(), std::greater<>());
          best.back() = {value, word};
          std::push_heap(best.begin(), best.end(), std::greater<>());
        }
      };
      if (cols) {
        for (auto k : *cols) {
          const std::int32_t word = models[0]->output_word(k);
          if (word >= 3) consider(row[k], word);
        }
      } else {
        // Blocks of 16 whose best cannot enter the full heap are skipped (their maximum is one
        // vector reduction): the same choices, most of the row never compared one by one.
        constexpr std::int64_t kBlock = 16;
        std::int64_t v = 3;
        for (; v < std::min<std::int64_t>(Vc, kBlock); ++v) consider(row[v], static_cast<std::int32_t>(v));
        for (; v + kBlock <= Vc; v += kBlock) {
          float bmax = row[v];
#pragma omp simd reduction(max : bmax)
          for (std::int64_t k = 0; k < kBlock; ++k) bmax = std::max(bmax, row[v + k]);
          if (static_cast<int>(best.size()) == 2 * B && !(bmax > best.front().first)) continue;
          for (std::int64_t k = 0; k < kBlock; ++k) consider(row[v + k], static_cast<std::int32_t>(v + k));
        }
        for (; v < Vc; ++v) consider(row[v], static_cast<std::int32_t>(v));
      }
    }
    // The hypothesis `parent` extended by `tok`, with its histories.
    auto extend = [&](int parent, std::int32_t tok, double lp, float word_lp) {
      const Slot& from = slots[static_cast<std::size_t>(parent)];
      Slot next;
      next.lp = lp;
      next.ids = from.ids;
      if (tok != 3) next.ids.push_back(tok);
      if (o.word_scores) {
        next.word_lp = from.word_lp;
        next.word_lp.push_back(word_lp);
      }
      if (track_attention) {
        const int len = lengths[static_cast<std::size_t>(parent)];
        if (o.attention) {
          next.attention = from.attention;
          for (int j = 0; j < len; ++j) next.attention.push_back(alpha[static_cast<std::int64_t>(j) * H + parent]);
        }
        if (o.coverage_penalty != 0.0f) {
          next.coverage = from.coverage;
          for (int j = 0; j < len; ++j) next.coverage[static_cast<std::size_t>(j)] += alpha[static_cast<std::int64_t>(j) * H + parent];
        }
      }
      return next;
    };
    // Per sentence: the 2B best continuations (so EOS cannot empty the beam), EOS ones finish.
    const int G = static_cast<int>(active.size());
    std::vector<int> src_slot(static_cast<std::size_t>(H), 0);
    std::vector<std::int32_t> next_tok(static_cast<std::size_t>(H), 3);
    std::vector<Slot> next(static_cast<std::size_t>(H));
    std::vector<bool> done(static_cast<std::size_t>(G), false);
    for (int g = 0; g < G; ++g) {
      const int n = active[static_cast<std::size_t>(g)];
      struct Cand {
        double lp;
        int slot;
        std::int32_t tok;
        float word_lp;
      };
      std::vector<Cand> cands;
      for (int k = 0; k < B; ++k) {
        const int h = g * B + k;
        const double base = slots[static_cast<std::size_t>(h)].lp;
        if (base == neg_inf) continue;
        for (const auto& [logit, v] : top[static_cast<std::size_t>(h)]) {
          const float wlp = static_cast<float>(logit - row_lse[static_cast<std::size_t>(h)]);
          cands.push_back({base + logit - row_lse[static_cast<std::size_t>(h)], h, v, wlp});
        }
      }
      std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& c) { return a.lp > c.lp; });
      int filled = 0;
      bool best_ends = false, first = true;
      const bool last = i >= max_len[static_cast<std::size_t>(n)];
      for (const auto& cand : cands) {
        if (filled == B) break;
        if (cand.tok == 3 && i < o.min_length && !last) continue;  // too short to end
        if (first) best_ends = cand.tok == 3;
        first = false;
        if (cand.tok == 3 || last) {
          Slot ended = extend(cand.slot, cand.tok, cand.lp, cand.word_lp);
          Hypothesis hyp{std::move(ended.ids), cand.lp, 0, std::move(ended.word_lp), std::move(ended.attention)};
          hyp.score = final_score(ended, cand.lp, hyp.ids.size() + 1);
          finished[static_cast<std::size_t>(n)].push_back(std::move(hyp));
          continue;
        }
        const int h = g * B + filled++;
        src_slot[static_cast<std::size_t>(h)] = cand.slot;
        next_tok[static_cast<std::size_t>(h)] = cand.tok;
        next[static_cast<std::size_t>(h)] = extend(cand.slot, cand.tok, cand.lp, cand.word_lp);
      }
      // A sentence is done at its length limit, when nothing is left alive, or when n_best
      // hypotheses have finished and its best candidate of this step ended (no live hypothesis
      // is ahead of it any more). With n_best 1 the last condition is just best_ends.
      const bool enough = static_cast<int>(finished[static_cast<std::size_t>(n)].size()) >= o.n_best;
      done[static_cast<std::size_t>(g)] = last || filled == 0 || (best_ends && enough);
    }
    // The groups still searching, compacted: rows of finished sentences leave the batch.
    std::vector<int> keep;
    for (int g = 0; g < G; ++g)
      if (!done[static_cast<std::size_t>(g)]) keep.push_back(g);
    if (keep.empty()) break;
    const int H2 = static_cast<int>(keep.size()) * B;
    std::vector<int> row_from(static_cast<std::size_t>(H2)), parent(static_cast<std::size_t>(H2));
    for (std::size_t g2 = 0; g2 < keep.size(); ++g2)
      for (int k = 0; k < B; ++k) row_from[g2 * static_cast<std::size_t>(B) + static_cast<std::size_t>(k)] = keep[g2] * B + k;
    for (int h = 0; h < H2; ++h) parent[static_cast<std::size_t>(h)] = src_slot[static_cast<std::size_t>(row_from[static_cast<std::size_t>(h)])];
    for (int m = 0; m < M; ++m) models[static_cast<std::size_t>(m)]->search_select(ctx[static_cast<std::size_t>(m)], parent, row_from);
    std::vector<Slot> kept(static_cast<std::size_t>(H2));
    std::vector<std::int32_t> kept_tok(static_cast<std::size_t>(H2)), lengths2(static_cast<std::size_t>(H2));
    for (int h = 0; h < H2; ++h) {
      const auto from = static_cast<std::size_t>(row_from[static_cast<std::size_t>(h)]);
      kept[static_cast<std::size_t>(h)] = std::move(next[from]);
      kept_tok[static_cast<std::size_t>(h)] = next_tok[from];
      lengths2[static_cast<std::size_t>(h)] = lengths[from];
    }
    slots = std::move(kept);
    prev = std::move(kept_tok);
    lengths = std::move(lengths2);
    if (H2 != H) {
      std::vector<int> active2;
      for (int g : keep) active2.push_back(active[static_cast<std::size_t>(g)]);
      active = std::move(active2);
      H = H2;
      row_lse.resize(static_cast<std::size_t>(H));
      top.resize(static_cast<std::size_t>(H));
    }
  }
  std::vector<std::vector<Hypothesis>> out(static_cast<std::size_t>(N));
  for (int n = 0; n < N; ++n) {
    auto& fin = finished[static_cast<std::size_t>(n)];
    std::stable_sort(fin.begin(), fin.end(), [](const Hypothesis& a, const Hypothesis& c) { return a.score > c.score; });
    if (static_cast<int>(fin.size()) > o.n_best) fin.resize(static_cast<std::size_t>(o.n_best));
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
    Tensor& dx = enc_dx_;
    dx.resize({S, N, C});
    if (!L.bwd) {
      L.fwd->backward(L.cache_fwd, dtop.data(), nullptr, nullptr, dx.data(), nullptr, nullptr);
    } else {
      Tensor &dy_fwd = enc_dy_fwd_, &dy_rev = enc_dy_rev_;
      dy_fwd.resize({S, N, H});
      dy_rev.resize({S, N, H});
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
      Tensor &dx_rev = enc_dx_rev_, &dx_back = enc_dx_back_;
      dx_rev.resize({S, N, C});
      dx_back.resize({S, N, C});
      L.bwd->backward(L.cache_bwd, dy_rev.data(), nullptr, nullptr, dx_rev.data(), nullptr, nullptr);
      reverse_within(dx_rev.data(), dx_back.data(), S, N, C, b.src_lengths);
      add(rows * C, dx_back.data(), dx.data());
    }
    if (dropout_active_ && ((l == 0 && config_.dropout_emb > 0) || (l > 0 && config_.dropout_rnn > 0))) {
      nn::dropout_backward(rows * C, L.drop_mask.data(), dx.data());
    }
    if (l == 0) src_emb_.backward(rows, b.src, dx.data());
    else std::swap(dtop, dx);
  }
}

}  // namespace gloss::model
