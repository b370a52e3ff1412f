#include "gloss/model/seq2seq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <optional>
#include <sstream>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/error.h"

namespace gloss::model {
namespace {

constexpr std::int64_t kOutputChunkRows = 128;  // rows of logits computed at once in training

// out[t, n] = in[len_n - 1 - t, n] for t < len_n, else in[t, n]: the sequence of each sentence
// reversed within its own length (its own inverse).
void reverse_within(const float* in, float* out, int S, int N, std::int64_t C, const std::int32_t* lengths) {
  const auto bytes = static_cast<std::size_t>(C) * sizeof(float);
  for (int n = 0; n < N; ++n) {
    const int len = lengths[n];
    for (int t = 0; t < S; ++t) {
      const int from = t < len ? len - 1 - t : t;
      std::memcpy(out + (static_cast<std::int64_t>(t) * N + n) * C, in + (static_cast<std::int64_t>(from) * N + n) * C,
                  bytes);
    }
  }
}

// Word dropout: each real word (not padding or BOS) becomes <unk> with probability p.
void drop_words(std::vector<std::int32_t>& ids, float p, Rng& rng) {
  for (auto& id : ids)
    if (id != text::kPadId && id != text::kBosId && rng.uniform() < p) id = text::kUnkId;
}

void add(std::int64_t n, const float* x, float* y) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) y[i] += x[i];
}

// out [S, N, 2H] = [y_fwd ; y_rev read back in each sentence's own order] (y_rev ran over the
// sentence reversed within its length; positions past it stay where they are).
void concat_directions(const float* y_fwd, const float* y_rev, int S, int N, std::int64_t H,
                       const std::int32_t* lengths, Tensor& out) {
  out.resize({S, N, 2 * H});
  for (int t = 0; t < S; ++t) {
    for (int n = 0; n < N; ++n) {
      const int len = lengths[n];
      const int from = t < len ? len - 1 - t : t;
      float* o = out.data() + (static_cast<std::int64_t>(t) * N + n) * 2 * H;
      std::memcpy(o, y_fwd + (static_cast<std::int64_t>(t) * N + n) * H, static_cast<std::size_t>(H) * sizeof(float));
      std::memcpy(o + H, y_rev + (static_cast<std::int64_t>(from) * N + n) * H,
                  static_cast<std::size_t>(H) * sizeof(float));
    }
  }
}

}  // namespace

void validate(const ModelConfig& c) {
  auto within = [](std::int64_t v, std::int64_t most, const char* name) {
    if (v < 1 || v > most)
      throw ConfigError(std::string("model.") + name + " must be between 1 and " + std::to_string(most) + " (got " +
                        std::to_string(v) + ")");
  };
  within(c.src_vocab, kMaxVocab, "src_vocab");
  within(c.tgt_vocab, kMaxVocab, "tgt_vocab");
  within(c.emb_dim, kMaxDim, "emb_dim");
  within(c.enc_hidden, kMaxDim, "enc_hidden");
  within(c.enc_layers, kMaxLayers, "enc_layers");
  within(c.dec_hidden, kMaxDim, "dec_hidden");
  within(c.dec_layers, kMaxLayers, "dec_layers");
  within(c.att_dim, kMaxDim, "att_dim");
  within(c.readout_dim, kMaxDim, "readout_dim");
  // Stored strings may be anything: name the choices, never echo the bytes.
  if (c.bidirectional != "first" && c.bidirectional != "all" && c.bidirectional != "none")
    throw ConfigError("model.bidirectional must be first, all or none");
  if (c.readout != "maxout" && c.readout != "tanh") throw ConfigError("model.readout must be maxout or tanh");
  if (c.dec_init != "last_backward" && c.dec_init != "mean" && c.dec_init != "zero")
    throw ConfigError("model.dec_init must be last_backward, mean or zero");
  if (c.decoder != "bahdanau" && c.decoder != "conditional")
    throw ConfigError("model.decoder must be bahdanau or conditional");
  if (c.decoder == "conditional" && (c.cell != nn::CellType::kGru || c.dec_layers != 1 || c.layer_norm))
    throw ConfigError(
        "model.decoder conditional takes model.cell gru, model.dec_layers 1 and model.layer_norm false; change "
        "those keys or use model.decoder bahdanau");
  if (c.tie_target_embeddings && c.readout_dim != c.emb_dim)
    throw ConfigError("model.tie_target_embeddings needs model.readout_dim == model.emb_dim");
  for (float p : {c.dropout_emb, c.dropout_rnn, c.dropout_readout, c.dropout_ctx, c.word_dropout})
    if (!(p >= 0 && p < 1)) throw ConfigError("model dropout probabilities must be in [0, 1)");
}

std::int64_t min_parameter_count(const ModelConfig& c) {
  const std::int64_t g = 3;  // gates of a GRU (an LSTM has 4)
  const std::int64_t e = c.emb_dim, h = c.enc_hidden, d = c.dec_hidden;
  const std::int64_t tables =
      c.src_vocab * e + c.tgt_vocab * e + (c.tie_target_embeddings ? 0 : c.tgt_vocab * c.readout_dim);
  const std::int64_t encoder = g * h * (e + h) + (c.enc_layers - 1) * g * h * 2 * h;  // one direction at least
  const std::int64_t decoder = g * d * (e + h + d) + (c.dec_layers - 1) * g * d * 2 * d;
  const std::int64_t attention = c.att_dim * (h + d), readout = c.readout_dim * (d + e + h);
  return tables + encoder + decoder + attention + readout;
}

// Registered right after the attention (the order parameters are initialised in).
static std::vector<std::unique_ptr<nn::RnnCell>> decoder_layers(nn::ParameterSet& params, const ModelConfig& c,
                                                                std::int64_t key_dim) {
  std::vector<std::unique_ptr<nn::RnnCell>> layers;
  if (c.decoder == "conditional") {  // the RNN on the previous word, then the one on the context
    layers.push_back(std::make_unique<nn::RnnCell>(params, "decoder/rnn", c.cell, c.emb_dim, c.dec_hidden));
    layers.push_back(std::make_unique<nn::RnnCell>(params, "decoder/rnn_context", c.cell, key_dim, c.dec_hidden));
    return layers;
  }
  for (int l = 0; l < c.dec_layers; ++l)
    layers.push_back(std::make_unique<nn::RnnCell>(params, l == 0 ? "decoder/rnn" : "decoder/rnn" + std::to_string(l),
                                                   c.cell, l == 0 ? c.emb_dim + key_dim : c.dec_hidden, c.dec_hidden));
  return layers;
}

std::string shape_difference(const ModelConfig& stored, const ModelConfig& wanted) {
  const auto differs = [](const std::string& key, const auto& there, const auto& here) -> std::string {
    if (there == here) return "";
    std::ostringstream s;
    s << std::boolalpha << key << " is " << there << " there and " << here << " here";
    return s.str();
  };
  const auto cell = [](const ModelConfig& c) { return c.cell == nn::CellType::kGru ? "gru" : "lstm"; };
  for (const std::string& d :
       {differs("the source vocabulary", stored.src_vocab, wanted.src_vocab),
        differs("the target vocabulary", stored.tgt_vocab, wanted.tgt_vocab),
        differs("model.cell", std::string(cell(stored)), std::string(cell(wanted))),
        differs("model.emb_dim", stored.emb_dim, wanted.emb_dim),
        differs("model.enc_hidden", stored.enc_hidden, wanted.enc_hidden),
        differs("model.enc_layers", stored.enc_layers, wanted.enc_layers),
        differs("model.bidirectional", stored.bidirectional, wanted.bidirectional),
        differs("model.dec_hidden", stored.dec_hidden, wanted.dec_hidden),
        differs("model.dec_layers", stored.dec_layers, wanted.dec_layers),
        differs("model.decoder", stored.decoder, wanted.decoder),
        differs("model.att_dim", stored.att_dim, wanted.att_dim),
        differs("model.readout", stored.readout, wanted.readout),
        differs("model.readout_dim", stored.readout_dim, wanted.readout_dim),
        differs("model.dec_init", stored.dec_init, wanted.dec_init),
        differs("model.tie_target_embeddings", stored.tie_target_embeddings, wanted.tie_target_embeddings),
        differs("model.layer_norm", stored.layer_norm, wanted.layer_norm)})
    if (!d.empty()) return d;
  return "";
}

bool bidirectional_layer(const ModelConfig& c, int l) {
  return c.bidirectional == "all" || (c.bidirectional == "first" && l == 0);
}

std::int64_t annotation_width(const ModelConfig& c) {
  return bidirectional_layer(c, c.enc_layers - 1) ? 2 * c.enc_hidden : c.enc_hidden;
}

Seq2Seq::Seq2Seq(const ModelConfig& config, nn::ParameterSet& params)
    : config_((validate(config), config)),
      conditional_(config.decoder == "conditional"),
      key_dim_(annotation_width(config)),
      src_emb_(params, "encoder/embedding", config.src_vocab, config.emb_dim, text::kPadId, true),
      // Tied, the output layer adds to every row of the target table.
      tgt_emb_(params, "decoder/embedding", config.tgt_vocab, config.emb_dim, text::kPadId,
               !config.tie_target_embeddings),
      attention_(params, "decoder/attention", config.dec_hidden, key_dim_, config.att_dim),
      dec_rnn_(decoder_layers(params, config, key_dim_)),
      readout_(params, "decoder/readout", config.dec_hidden + key_dim_ + config.emb_dim,
               config.readout == "maxout" ? 2 * config.readout_dim : config.readout_dim) {
  std::int64_t in = config.emb_dim;
  for (int l = 0; l < config.enc_layers; ++l) {
    EncoderLayer layer;
    const bool bi = bidirectional_layer(config, l);
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
  if (config.tie_target_embeddings)
    out_bias_ = &params.add("decoder/output/bias", {config.tgt_vocab});
  else
    out_ = std::make_unique<nn::Linear>(params, "decoder/output", config.readout_dim, config.tgt_vocab);
  if (config.layer_norm) {
    ln_keys_ = std::make_unique<nn::LayerNorm>(params, "encoder/annotations", key_dim_);
    ln_dec_in_ = std::make_unique<nn::LayerNorm>(params, "decoder/input", config.emb_dim + key_dim_);
  }
}

std::int64_t Seq2Seq::encoder_layer_input(std::size_t l, int S, int N, const std::int32_t* src_ids, Rng* rng) {
  EncoderLayer& L = layers_[l];
  const std::int64_t rows = static_cast<std::int64_t>(S) * N;
  if (l == 0) {
    const std::int64_t C = config_.emb_dim;
    L.in.resize({S, N, C});
    src_emb_.forward(rows, src_ids, L.in.data());
    if (rng && config_.dropout_emb > 0) {
      L.drop_mask.resize({S, N, C});
      nn::dropout_forward(rows * C, config_.dropout_emb, *rng, L.in.data(), L.drop_mask.data());
    }
    return C;
  }
  L.in = layers_[l - 1].out;
  const std::int64_t C = L.in.dim(2);
  if (rng && config_.dropout_rnn > 0) {
    L.drop_mask.resize({S, N, C});
    nn::dropout_forward(rows * C, config_.dropout_rnn, *rng, L.in.data(), L.drop_mask.data());
  }
  return C;
}

const float* Seq2Seq::encoder_rnn(nn::RnnCell& cell, EncoderRun& run, Tensor& y, const float* x, int S, int N,
                                  bool training) {
  const std::int64_t H = config_.enc_hidden, NH = static_cast<std::int64_t>(N) * H;
  if (!training) {
    y.resize({S, N, H});
    cell.forward(S, N, x, nullptr, nullptr, y.data(), nullptr, nullptr);
    return y.data();
  }
  if (!run.steps) run.steps.emplace(cell);
  run.h.resize({S + 1, N, H});
  std::fill_n(run.h.data(), NH, 0.0f);
  float* c = nullptr;
  if (config_.cell == nn::CellType::kLstm) {
    run.c.resize({S + 1, N, H});
    std::fill_n(run.c.data(), NH, 0.0f);
    c = run.c.data();
  }
  run.steps->begin(S, N, x, run.h.data(), c);
  run.steps->forward_sequence();
  return run.h.data() + NH;
}

void Seq2Seq::encode(const BatchView& b, const std::int32_t* src_ids, Rng* rng, bool training) {
  const int S = b.S, N = b.N;
  const std::int64_t H = config_.enc_hidden;
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    EncoderLayer& L = layers_[l];
    const std::int64_t C = encoder_layer_input(l, S, N, src_ids, rng);
    const float* y_fwd = encoder_rnn(*L.fwd, L.run_fwd, L.y_fwd, L.in.data(), S, N, training);
    if (!L.bwd) {
      L.out.resize({S, N, H});
      std::copy_n(y_fwd, L.out.size(), L.out.data());
      continue;
    }
    L.in_rev.resize({S, N, C});
    reverse_within(L.in.data(), L.in_rev.data(), S, N, C, b.src_lengths);
    const float* y_rev = encoder_rnn(*L.bwd, L.run_rev, L.y_rev, L.in_rev.data(), S, N, training);
    concat_directions(y_fwd, y_rev, S, N, H, b.src_lengths, L.out);
  }
}

nn::LossSum Seq2Seq::forward_backward(const BatchView& b, float label_smoothing, Rng* rng, bool backward,
                                      float grad_scale) {
  dropout_active_ = rng != nullptr;
  std::optional<compute::Bf16Gemms> bf16;
  if (train_bf16_ && backward) bf16.emplace();
  const std::int64_t rows = static_cast<std::int64_t>(b.S) * b.N;
  ws_.src_ids = b.src;
  if (rng && config_.word_dropout > 0) {  // source words become <unk>
    ws_.src_used.assign(b.src, b.src + rows);
    drop_words(ws_.src_used, config_.word_dropout, *rng);
    ws_.src_ids = ws_.src_used.data();
  }
  encode(b, ws_.src_ids, rng, backward);
  if (ln_keys_) {  // the annotations layer-normalised (their input kept for backward)
    Tensor& annotations = layers_.back().out;
    ws_.keys_pre = annotations;
    ws_.keys_stats.resize({rows, 2});
    ln_keys_->forward(rows, ws_.keys_pre.data(), annotations.data(), ws_.keys_stats.data());
  }
  if (rng && config_.dropout_ctx > 0) {  // dropout on the annotations (keys of the attention, init input)
    Tensor& annotations = layers_.back().out;
    ws_.ctx_drop.resize(annotations.shape());
    nn::dropout_forward(annotations.size(), config_.dropout_ctx, *rng, annotations.data(), ws_.ctx_drop.data());
  }
  decoder_start(b, rng);
  decoder_forward(b, rng, backward);
  readout_forward(b, rng);
  const nn::LossSum loss = output_and_loss(b, label_smoothing, backward, grad_scale);
  if (!backward) return loss;
  readout_backward(b);
  decoder_backward(b);
  init_backward(b);
  const std::int64_t M = static_cast<std::int64_t>(b.T) * b.N;
  if (dropout_active_ && config_.dropout_emb > 0)
    nn::dropout_backward(M * config_.emb_dim, ws_.tgt_drop.data(), ws_.demb.data());
  tgt_emb_.backward(M, ws_.tgt_in_used.data(), ws_.demb.data());
  if (dropout_active_ && config_.dropout_ctx > 0)
    nn::dropout_backward(ws_.dkeys.size(), ws_.ctx_drop.data(), ws_.dkeys.data());
  if (ln_keys_)
    ln_keys_->backward(rows, ws_.keys_pre.data(), ws_.keys_stats.data(), ws_.dkeys.data(), ws_.dkeys.data());
  backward_encoder(b, ws_.dkeys);
  return loss;
}

// Initial decoder state (every layer's h starts at s_0, LSTM cells at zero), the attention
// memory and the target embeddings (with dropout).
void Seq2Seq::decoder_start(const BatchView& b, Rng* rng) {
  const int N = b.N, T = b.T;
  const std::int64_t E = config_.emb_dim, D = config_.dec_hidden;
  const std::int64_t M = static_cast<std::int64_t>(T) * N;
  const int L = config_.dec_layers;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  const std::int64_t ND = static_cast<std::int64_t>(N) * D;
  ws_.dec_h.resize(static_cast<std::size_t>(L));
  ws_.dec_c.resize(lstm ? static_cast<std::size_t>(L) : 0);
  for (int l = 0; l < L; ++l) {
    ws_.dec_h[static_cast<std::size_t>(l)].resize({T + 1, N, D});
    if (lstm) {
      ws_.dec_c[static_cast<std::size_t>(l)].resize({T + 1, N, D});
      std::memset(ws_.dec_c[static_cast<std::size_t>(l)].data(), 0, static_cast<std::size_t>(ND) * sizeof(float));
    }
  }
  if (conditional()) ws_.dec_mid.resize({T, N, D});
  float* s0 = ws_.dec_h[0].data();
  initial_state(b, s0, ws_.init_in);
  for (int l = 1; l < L; ++l)
    std::memcpy(ws_.dec_h[static_cast<std::size_t>(l)].data(), s0, static_cast<std::size_t>(ND) * sizeof(float));

  ws_.memory.S = b.S;
  ws_.memory.N = N;
  ws_.memory.keys = layers_.back().out.data();  // the annotations [S, N, K]
  ws_.memory.lengths = b.src_lengths;
  attention_.prepare(ws_.memory);
  ws_.tgt_in_used.assign(b.tgt_in, b.tgt_in + M);
  if (rng && config_.word_dropout > 0) drop_words(ws_.tgt_in_used, config_.word_dropout, *rng);  // decoder inputs too
  ws_.tgt_emb_out.resize({T, N, E});
  tgt_emb_.forward(M, ws_.tgt_in_used.data(), ws_.tgt_emb_out.data());
  if (rng && config_.dropout_emb > 0) {
    ws_.tgt_drop.resize({T, N, E});
    nn::dropout_forward(M * E, config_.dropout_emb, *rng, ws_.tgt_emb_out.data(), ws_.tgt_drop.data());
  }
  if (ws_.steps.size() < static_cast<std::size_t>(T)) ws_.steps.resize(static_cast<std::size_t>(T));
}

std::vector<nn::RnnSteps>& Seq2Seq::decoder_steps() {
  if (ws_.dec_steps.empty())
    for (auto& cell : dec_rnn_) ws_.dec_steps.emplace_back(*cell);
  return ws_.dec_steps;
}

// The decoder's RnnSteps for T steps. Without scheduled sampling the target embeddings of all
// steps are known before step 0 (decoder_start), so the first RNN takes their x W as one GEMM
// of all steps (RnnSteps' known columns; not under the input's layer normalisation, which mixes
// them with the context).
void Seq2Seq::begin_decoder_steps(int T, int N, bool sampling) {
  const std::int64_t E = config_.emb_dim, ND = static_cast<std::int64_t>(N) * config_.dec_hidden;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  decoder_steps();
  const float* emb = ws_.tgt_emb_out.data();
  if (conditional()) {  // the word RNN: E y_{i-1}, s_{i-1}; the context RNN: c_i, s'_i
    ws_.dec_steps[0].begin(T, N, emb, ws_.dec_h[0].data(), nullptr, emb, sampling ? 0 : E);
    ws_.dec_steps[1].begin(T, N, ws_.contexts.data(), ws_.dec_mid.data(), nullptr);
    return;
  }
  const std::int64_t known = sampling || ln_dec_in_ ? 0 : E;  // layer 0's input: [E y_{i-1} ; c_i]
  for (std::size_t l = 0; l < dec_rnn_.size(); ++l)           // layer l > 0 reads the state after step i of layer l - 1
    ws_.dec_steps[l].begin(T, N, l == 0 ? ws_.dec_in.data() : ws_.dec_h[l - 1].data() + ND, ws_.dec_h[l].data(),
                           lstm ? ws_.dec_c[l].data() : nullptr, l == 0 ? emb : nullptr, l == 0 ? known : 0);
}

void Seq2Seq::run_decoder_layer(int l, int i, int N, bool backward, float* h_out, float* c_out) {
  const auto li = static_cast<std::size_t>(l);
  if (backward) {  // RnnSteps reads its inputs where begin_decoder_steps pointed it
    ws_.dec_steps[li].forward(i, h_out, c_out);
    return;
  }
  const std::int64_t E = config_.emb_dim, K = key_dim_, ND = static_cast<std::int64_t>(N) * config_.dec_hidden;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  const float* x = l == 0 ? ws_.dec_in.data() + static_cast<std::int64_t>(i) * N * (E + K)
                          : ws_.dec_h[li - 1].data() + static_cast<std::int64_t>(i + 1) * ND;
  dec_rnn_[li]->forward(1, N, x, ws_.dec_h[li].data() + i * ND, lstm ? ws_.dec_c[li].data() + i * ND : nullptr, h_out,
                        nullptr, c_out);
}

void Seq2Seq::run_conditional_cell(int cell, int i, int N, bool backward, float* h_out) {
  const std::int64_t E = config_.emb_dim, K = key_dim_, ND = static_cast<std::int64_t>(N) * config_.dec_hidden;
  if (backward)
    ws_.dec_steps[static_cast<std::size_t>(cell)].forward(i, h_out, nullptr);
  else if (cell == 0)
    dec_rnn_[0]->forward(1, N, ws_.tgt_emb_out.data() + static_cast<std::int64_t>(i) * N * E,
                         ws_.dec_h[0].data() + i * ND, nullptr, h_out, nullptr, nullptr);
  else
    dec_rnn_[1]->forward(1, N, ws_.contexts.data() + static_cast<std::int64_t>(i) * N * K, ws_.dec_mid.data() + i * ND,
                         nullptr, h_out, nullptr, nullptr);
}

// The decoder's time steps (bahdanau_step or conditional_step), and with scheduled sampling
// the model's own choices fed back.
void Seq2Seq::decoder_forward(const BatchView& b, Rng* rng, bool backward) {
  const int N = b.N, T = b.T;
  const std::int64_t E = config_.emb_dim, K = key_dim_;
  const bool sampling = rng && teacher_forcing_ < 1.0f;
  ws_.contexts.resize({T, N, K});
  if (!conditional()) ws_.dec_in.resize({T, N, E + K});
  if (ln_dec_in_) {
    ws_.dec_in_pre.resize({T, N, E + K});
    ws_.dec_in_stats.resize({T, N, 2});
  }
  if (backward) begin_decoder_steps(T, N, sampling);
  for (int i = 0; i < T; ++i) {
    float* c = ws_.contexts.data() + static_cast<std::int64_t>(i) * N * K;
    if (conditional())
      conditional_step(i, N, backward);
    else
      bahdanau_step(i, N, backward);
    if (sampling && i + 1 < T) sample_next_inputs(b, i, c, *rng);
  }
}

// Attention on the previous top state, the RNN layers on [E y_{i-1} ; c_i].
void Seq2Seq::bahdanau_step(int i, int N, bool backward) {
  const std::int64_t K = key_dim_, ND = static_cast<std::int64_t>(N) * config_.dec_hidden;
  const int L = config_.dec_layers;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  float* c = ws_.contexts.data() + static_cast<std::int64_t>(i) * N * K;
  attention_.forward(ws_.memory, ws_.dec_h[static_cast<std::size_t>(L - 1)].data() + i * ND, c,
                     ws_.steps[static_cast<std::size_t>(i)]);
  decoder_step_input(i, N, c);
  for (int l = 0; l < L; ++l) {
    const auto li = static_cast<std::size_t>(l);
    run_decoder_layer(l, i, N, backward, ws_.dec_h[li].data() + (i + 1) * ND,
                      lstm ? ws_.dec_c[li].data() + (i + 1) * ND : nullptr);
  }
}

// s'_i = RNN_1(E y_{i-1}, s_{i-1}) into ws_.dec_mid, c_i = Attention(s'_i), s_i = RNN_2(c_i, s'_i).
void Seq2Seq::conditional_step(int i, int N, bool backward) {
  const std::int64_t K = key_dim_, ND = static_cast<std::int64_t>(N) * config_.dec_hidden;
  float* mid = ws_.dec_mid.data() + i * ND;
  run_conditional_cell(0, i, N, backward, mid);
  attention_.forward(ws_.memory, mid, ws_.contexts.data() + static_cast<std::int64_t>(i) * N * K,
                     ws_.steps[static_cast<std::size_t>(i)]);
  run_conditional_cell(1, i, N, backward, ws_.dec_h[0].data() + (i + 1) * ND);
}

void Seq2Seq::decoder_step_input(int i, int N, const float* c) {
  const std::int64_t E = config_.emb_dim, K = key_dim_;
  float* x = ws_.dec_in.data() + static_cast<std::int64_t>(i) * N * (E + K);
  for (int n = 0; n < N; ++n) {
    std::memcpy(x + n * (E + K), ws_.tgt_emb_out.data() + (static_cast<std::int64_t>(i) * N + n) * E,
                static_cast<std::size_t>(E) * sizeof(float));
    std::memcpy(x + n * (E + K) + E, c + n * K, static_cast<std::size_t>(K) * sizeof(float));
  }
  if (ln_dec_in_) {  // the RNN input layer-normalised (its input kept for backward)
    float* pre = ws_.dec_in_pre.data() + static_cast<std::int64_t>(i) * N * (E + K);
    std::memcpy(pre, x, static_cast<std::size_t>(N * (E + K)) * sizeof(float));
    ln_dec_in_->forward(N, pre, x, ws_.dec_in_stats.data() + static_cast<std::int64_t>(i) * N * 2);
  }
}

void Seq2Seq::sample_next_inputs(const BatchView& b, int i, const float* c, Rng& rng) {
  const int N = b.N;
  const std::int64_t E = config_.emb_dim, D = config_.dec_hidden, V = config_.tgt_vocab;
  const std::int64_t ND = static_cast<std::int64_t>(N) * D;
  const Tensor& top = ws_.dec_h[static_cast<std::size_t>(config_.dec_layers - 1)];
  const bool emb_dropout = config_.dropout_emb > 0;
  readout_logits(N, top.data() + (i + 1) * ND, c, ws_.tgt_emb_out.data() + static_cast<std::int64_t>(i) * N * E,
                 ws_.sample, nullptr);
  for (int n = 0; n < N; ++n) {
    const std::int64_t at = static_cast<std::int64_t>(i + 1) * N + n;
    if (b.tgt_in[at] == text::kPadId || rng.uniform() < teacher_forcing_) continue;
    const float* row = ws_.sample.logits.data() + static_cast<std::int64_t>(n) * V;
    std::int32_t best = text::kEosId;
    for (std::int64_t v = text::kFirstWordId; v < V; ++v)
      if (row[v] > row[best]) best = static_cast<std::int32_t>(v);
    ws_.tgt_in_used[static_cast<std::size_t>(at)] = best;
    float* e = ws_.tgt_emb_out.data() + at * E;
    tgt_emb_.forward(1, &best, e);
    if (emb_dropout)
      for (std::int64_t k = 0; k < E; ++k) e[k] *= ws_.tgt_drop[at * E + k];
  }
}

// The readout's inputs [s_i ; c_i ; e_i] of all steps, without building the concatenation.
std::vector<nn::Linear::Part> Seq2Seq::readout_parts(const BatchView& b) {
  const std::int64_t ND = static_cast<std::int64_t>(b.N) * config_.dec_hidden;
  const Tensor& top = ws_.dec_h[static_cast<std::size_t>(config_.dec_layers - 1)];
  return {{top.data() + ND, config_.dec_hidden},
          {ws_.contexts.data(), key_dim_},
          {ws_.tgt_emb_out.data(), config_.emb_dim}};
}

// The readout for all steps at once (maxout or tanh, then dropout).
void Seq2Seq::readout_forward(const BatchView& b, Rng* rng) {
  const std::int64_t R = config_.readout_dim, M = static_cast<std::int64_t>(b.T) * b.N;
  const bool maxout = config_.readout == "maxout";
  ws_.readout_pre.resize({M, maxout ? 2 * R : R});
  readout_.forward_parts(M, readout_parts(b), ws_.readout_pre.data());
  ws_.readout_out.resize({M, R});
  if (maxout) {
    ws_.maxout_which.resize(static_cast<std::size_t>(M * R));
    nn::maxout_forward(M, R, ws_.readout_pre.data(), ws_.readout_out.data(), ws_.maxout_which.data());
  } else {
    std::memcpy(ws_.readout_out.data(), ws_.readout_pre.data(), static_cast<std::size_t>(M * R) * sizeof(float));
    nn::tanh_forward(M * R, ws_.readout_out.data());
  }
  if (rng && config_.dropout_readout > 0) {
    ws_.readout_drop.resize({M, R});
    nn::dropout_forward(M * R, config_.dropout_readout, *rng, ws_.readout_out.data(), ws_.readout_drop.data());
  }
}

// The output layer and loss (and their backward, into ws_.dt) in chunks of rows: the logits
// of a whole batch (rows x vocabulary) would be the largest buffer of a training step.
nn::LossSum Seq2Seq::output_and_loss(const BatchView& b, float label_smoothing, bool backward, float grad_scale) {
  const std::int64_t E = config_.emb_dim, R = config_.readout_dim, V = config_.tgt_vocab;
  const std::int64_t M = static_cast<std::int64_t>(b.T) * b.N;
  Tensor& dt = ws_.dt;
  if (backward) dt.resize({M, R});
  nn::LossSum loss;
  for (std::int64_t r0 = 0; r0 < M; r0 += kOutputChunkRows) {
    const std::int64_t rows = std::min(kOutputChunkRows, M - r0);
    const float* t = ws_.readout_out.data() + r0 * R;
    ws_.logits.resize({rows, V});
    if (out_) {
      out_->forward(rows, t, ws_.logits.data());
    } else {
      for (std::int64_t r = 0; r < rows; ++r)
        std::memcpy(ws_.logits.data() + r * V, out_bias_->value.data(), static_cast<std::size_t>(V) * sizeof(float));
      compute::gemm(false, true, rows, V, R, 1.0f, t, R, tgt_emb_.table().value.data(), E, 1.0f, ws_.logits.data(), V);
    }
    const nn::LossSum part = nn::softmax_cross_entropy(rows, V, ws_.logits.data(), b.tgt_out + r0, text::kPadId,
                                                       label_smoothing, backward, grad_scale);
    loss.loss += part.loss;
    loss.nll += part.nll;
    loss.tokens += part.tokens;
    if (!backward) continue;
    const float* dlogits = ws_.logits.data();
    if (out_) {
      out_->backward(rows, t, dlogits, dt.data() + r0 * R);
    } else {
      compute::gemm(true, false, V, R, rows, 1.0f, dlogits, V, t, R, 1.0f, tgt_emb_.table().grad.data(), E);
      kernels::add_column_sums(rows, V, dlogits, V, out_bias_->grad.data());
      compute::gemm(false, false, rows, R, V, 1.0f, dlogits, V, tgt_emb_.table().value.data(), E, 0.0f,
                    dt.data() + r0 * R, R);
    }
  }
  return loss;
}

// ws_.dt (the readout output's gradient) -> the gradients of s_i, c_i and e_i of every step.
void Seq2Seq::readout_backward(const BatchView& b) {
  const int N = b.N, T = b.T;
  const std::int64_t R = config_.readout_dim, M = static_cast<std::int64_t>(T) * N;
  Tensor& dt = ws_.dt;
  if (dropout_active_ && config_.dropout_readout > 0) nn::dropout_backward(M * R, ws_.readout_drop.data(), dt.data());
  Tensor& dpre = ws_.readout_pre;  // the pre-activations become their gradient, in place
  if (config_.readout == "maxout") {
    nn::maxout_backward(M, R, ws_.maxout_which.data(), dt.data(), dpre.data());
  } else {
    // readout_out was overwritten by dropout; recompute tanh from the pre-activation.
    for (std::int64_t i = 0; i < M * R; ++i) {
      const float y = std::tanh(ws_.readout_pre[i]);
      dpre[i] = dt[i] * (1.0f - y * y);  // same element: in place is safe
    }
  }
  ws_.ds_readout.resize({T, N, config_.dec_hidden});
  ws_.dcontext.resize({T, N, key_dim_});
  ws_.demb.resize({T, N, config_.emb_dim});
  readout_.backward_parts(M, readout_parts(b), dpre.data(),
                          {ws_.ds_readout.data(), ws_.dcontext.data(), ws_.demb.data()});
}

// Back through the decoder's steps, last first: RNN layers (ws_.dec_steps, whose weight
// gradients come at the end), the RNN input's split into embedding and context, and the
// attention. Leaves ws_.dh_next[l] = the gradient of layer l's initial state, ws_.dkeys the
// annotations'.
// decoder_backward's scratch for one batch, each [N, .]: dy the gradient of a layer's new
// state, dx0 / dxl the input gradients of layer 0 / of a layer above it, dh_prev / dc_prev
// what a layer sends back to the step before, dquery the attention's query gradient.
struct Seq2Seq::DecoderGrads {
  DecoderGrads(int N, std::int64_t D, std::int64_t in)
      : dy({N, D}), dx0({N, in}), dxl({N, D}), dh_prev({N, D}), dc_prev({N, D}), dquery({N, D}) {}
  Tensor dy, dx0, dxl, dh_prev, dc_prev, dquery;
};

void Seq2Seq::decoder_backward(const BatchView& b) {
  const int S = b.S, N = b.N, T = b.T;
  const std::int64_t E = config_.emb_dim, K = key_dim_, D = config_.dec_hidden;
  const std::int64_t M = static_cast<std::int64_t>(T) * N, ND = static_cast<std::int64_t>(N) * D;
  const int L = config_.dec_layers;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  ws_.dkeys.resize({S, N, K});
  ws_.dkeys.zero();  // accumulated into
  // dh_next[l], dc_next[l]: what step i + 1 sent back to layer l's state after step i.
  ws_.dh_next.resize(static_cast<std::size_t>(L));
  ws_.dc_next.resize(lstm ? static_cast<std::size_t>(L) : 0);
  for (auto& g : ws_.dh_next) g.resize({N, D}), g.zero();
  for (auto& g : ws_.dc_next) g.resize({N, D}), g.zero();
  DecoderGrads g(N, D, E + K);
  Tensor& da = ws_.da;  // the attention's gradient of W s + b at every step, for one GEMM at the end
  da.resize({T, N, attention_.att_dim()});
  attention_.begin_backward(ws_.memory);
  for (int i = T - 1; i >= 0; --i) {
    float* da_i = da.data() + i * N * attention_.att_dim();
    if (conditional()) {
      conditional_step_backward(i, N, g, da_i);
      continue;
    }
    for (int l = L - 1; l >= 0; --l) decoder_layer_backward(l, i, N, g);
    float* dc = decoder_input_backward(i, N, g.dx0);
    attention_.backward(ws_.memory, ws_.steps[static_cast<std::size_t>(i)], dc, da_i, g.dquery.data(),
                        ws_.dkeys.data());
    add(ND, g.dquery.data(), ws_.dh_next[static_cast<std::size_t>(L - 1)].data());
  }
  // The attention's queries of all steps: the previous top states, or the first RNN's states.
  const float* queries = conditional() ? ws_.dec_mid.data() : ws_.dec_h[static_cast<std::size_t>(L - 1)].data();
  attention_.finish_backward(ws_.memory, M, queries, da.data(), ws_.dkeys.data());
  for (std::size_t l = 0; l < ws_.dec_steps.size(); ++l)  // the RNNs' weight gradients (the first's known input: E y)
    ws_.dec_steps[l].finish_backward(l == 0 ? ws_.demb.data() : nullptr);
}

// Back through conditional_step i: the context RNN (its input gradient into ws_.dcontext), the
// attention (its query gradient joins the context RNN's state gradient), the word RNN (its
// input gradient into ws_.demb); what goes back to step i - 1 into ws_.dh_next[0].
void Seq2Seq::conditional_step_backward(int i, int N, DecoderGrads& g, float* da) {
  const std::int64_t E = config_.emb_dim, K = key_dim_, ND = static_cast<std::int64_t>(N) * config_.dec_hidden;
  Tensor& dh_next = ws_.dh_next[0];
  for (std::int64_t k = 0; k < ND; ++k) g.dy[k] = dh_next[k] + ws_.ds_readout[i * ND + k];
  float* dx = g.dx0.data();  // [N, E + K]: room for either cell's input gradient, [N, K] or [N, E]
  for (int cell = 1; cell >= 0; --cell) {
    ws_.dec_steps[static_cast<std::size_t>(cell)].backward(i, g.dy.data(), nullptr, dx, g.dh_prev.data(), nullptr);
    if (cell == 1) {  // dy of the word RNN's state: the context RNN's state gradient and the query's
      float* dc = ws_.dcontext.data() + static_cast<std::int64_t>(i) * N * K;
      add(N * K, dx, dc);
      attention_.backward(ws_.memory, ws_.steps[static_cast<std::size_t>(i)], dc, da, g.dquery.data(),
                          ws_.dkeys.data());
      for (std::int64_t k = 0; k < ND; ++k) g.dy[k] = g.dh_prev[k] + g.dquery[k];
    } else {  // the word RNN's input gradient: here, or (known columns) all steps' in finish_backward
      if (ws_.dec_steps[0].known() == 0) add(N * E, dx, ws_.demb.data() + static_cast<std::int64_t>(i) * N * E);
      std::swap(dh_next, g.dh_prev);
    }
  }
}

void Seq2Seq::decoder_layer_backward(int l, int i, int N, DecoderGrads& g) {
  const std::int64_t ND = static_cast<std::int64_t>(N) * config_.dec_hidden;
  const int L = config_.dec_layers;
  const bool lstm = config_.cell == nn::CellType::kLstm;
  const auto li = static_cast<std::size_t>(l);
  Tensor& dh_next = ws_.dh_next[li];
  // dy = (readout gradient of s_i, or the layer above's input gradient) + recurrent gradient
  const float* from_above = l == L - 1 ? nullptr : g.dxl.data();
  for (std::int64_t k = 0; k < ND; ++k)
    g.dy[k] = dh_next[k] + (from_above ? from_above[k] : ws_.ds_readout[i * ND + k]);
  ws_.dec_steps[li].backward(i, g.dy.data(), lstm ? ws_.dc_next[li].data() : nullptr,
                             l == 0 ? g.dx0.data() : g.dxl.data(), g.dh_prev.data(), lstm ? g.dc_prev.data() : nullptr);
  std::swap(dh_next, g.dh_prev);
  if (lstm) std::swap(ws_.dc_next[li], g.dc_prev);
}

float* Seq2Seq::decoder_input_backward(int i, int N, Tensor& dx0) {
  const std::int64_t E = config_.emb_dim, K = key_dim_;
  if (ln_dec_in_)
    ln_dec_in_->backward(N, ws_.dec_in_pre.data() + static_cast<std::int64_t>(i) * N * (E + K),
                         ws_.dec_in_stats.data() + static_cast<std::int64_t>(i) * N * 2, dx0.data(), dx0.data());
  float* dc = ws_.dcontext.data() + static_cast<std::int64_t>(i) * N * K;
  float* de = ws_.demb.data() + static_cast<std::int64_t>(i) * N * E;
  const bool emb_here = ws_.dec_steps[0].known() == 0;  // else all steps' in finish_backward
  for (int n = 0; n < N; ++n) {
    if (emb_here) add(E, dx0.data() + n * (E + K), de + n * E);
    add(K, dx0.data() + n * (E + K) + E, dc + n * K);
  }
  return dc;
}

// The initial state: every layer's h0 is s0 = tanh(init(x0)); x0's gradient into ws_.dkeys.
void Seq2Seq::init_backward(const BatchView& b) {
  const int N = b.N;
  const std::int64_t K = key_dim_, D = config_.dec_hidden, Henc = config_.enc_hidden;
  const std::int64_t ND = static_cast<std::int64_t>(N) * D;
  Tensor& ds_next = ws_.dh_next[0];
  for (int l = 1; l < config_.dec_layers; ++l) add(ND, ws_.dh_next[static_cast<std::size_t>(l)].data(), ds_next.data());
  if (!init_) return;
  const float* s0 = ws_.dec_h[0].data();
  for (std::int64_t k = 0; k < N * D; ++k) ds_next[k] *= 1.0f - s0[k] * s0[k];
  const std::int64_t in = init_->in();
  Tensor dinit({N, in});
  init_->backward(N, ws_.init_in.data(), ds_next.data(), dinit.data());
  const bool top_bi = layers_.back().bwd != nullptr;
  float* dkeys = ws_.dkeys.data();
  for (int n = 0; n < N; ++n) {
    const float* g = dinit.data() + n * in;
    const int len = b.src_lengths[n];
    if (config_.dec_init == "mean") {
      for (int j = 0; j < len; ++j) {
        float* d = dkeys + (static_cast<std::int64_t>(j) * N + n) * K;
        for (std::int64_t k = 0; k < K; ++k) d[k] += g[k] / static_cast<float>(len);
      }
    } else if (top_bi) {
      add(Henc, g, dkeys + static_cast<std::int64_t>(n) * K + Henc);
    } else {
      add(Henc, g, dkeys + (static_cast<std::int64_t>(len - 1) * N + n) * K);
    }
  }
}

void Seq2Seq::readout_logits(int rows, const float* s, const float* c, const float* emb, StepScratch& w,
                             PackedStepWeights* packed) {
  readout_step(rows, s, c, emb, w, packed);
  output_step(rows, w, packed);
}

namespace {

// out [rows, n] = x [rows, k] W + bias (nullptr: none) through `copy` of W [k, n] (or, `trans`,
// W stored [n, k] with row stride ldw) at the weights' `version`.
void packed_linear(compute::PackedCopy& copy, std::uint64_t version, bool trans, const float* w, std::int64_t ldw,
                   std::int64_t k, std::int64_t n, const float* bias, int rows, const float* x, float* out) {
  const compute::PackedF32Weight& packed = copy.get(trans, k, n, w, ldw, version);
  if (bias)
    for (int h = 0; h < rows; ++h) std::memcpy(out + h * n, bias, static_cast<std::size_t>(n) * sizeof(float));
  packed.run(rows, x, k, bias ? 1.0f : 0.0f, out, n);
}

}  // namespace

void Seq2Seq::readout_step(int rows, const float* s, const float* c, const float* emb, StepScratch& w,
                           PackedStepWeights* packed) {
  const std::int64_t E = config_.emb_dim, K = key_dim_, D = config_.dec_hidden;
  const std::int64_t R = config_.readout_dim;
  const bool maxout = config_.readout == "maxout";
  const std::int64_t RO = maxout ? 2 * R : R, RI = D + K + E;
  w.rin.resize({rows, RI});
  w.pre.resize({rows, RO});
  w.t.resize({rows, R});
  w.which.resize(static_cast<std::size_t>(rows * R));
  for (int h = 0; h < rows; ++h) {
    float* r = w.rin.data() + h * RI;
    std::memcpy(r, s + h * D, static_cast<std::size_t>(D) * sizeof(float));
    std::memcpy(r + D, c + h * K, static_cast<std::size_t>(K) * sizeof(float));
    std::memcpy(r + D + K, emb + h * E, static_cast<std::size_t>(E) * sizeof(float));
  }
  if (bf16_)
    readout_bf16_.run(rows, w.rin.data(), w.pre.data());
  else if (packed)
    packed_linear(packed->readout, dec_rnn_[0]->weights_version(), false, readout_.weight().value.data(), RO, RI, RO,
                  readout_.bias() ? readout_.bias()->value.data() : nullptr, rows, w.rin.data(), w.pre.data());
  else
    readout_.forward(rows, w.rin.data(), w.pre.data());
  if (maxout) {
    nn::maxout_forward(rows, R, w.pre.data(), w.t.data(), w.which.data());
  } else {
    std::memcpy(w.t.data(), w.pre.data(), static_cast<std::size_t>(rows * R) * sizeof(float));
    nn::tanh_forward(rows * R, w.t.data());
  }
}

void Seq2Seq::output_step(int rows, StepScratch& w, PackedStepWeights* packed) {
  const std::int64_t E = config_.emb_dim, R = config_.readout_dim, V = config_.tgt_vocab;
  w.logits.resize({rows, V});
  if (!out_subset_.empty()) {
    const auto Vs = static_cast<std::int64_t>(out_subset_.size());
    w.logits.resize({rows, Vs});
    if (bf16_) {
      out_sub_bf16_.run(rows, w.t.data(), w.logits.data());
      return;
    }
    for (int h = 0; h < rows; ++h)
      std::memcpy(w.logits.data() + h * Vs, out_b_sub_.data(), static_cast<std::size_t>(Vs) * sizeof(float));
    if (out_)
      compute::gemm(false, false, rows, Vs, R, 1.0f, w.t.data(), R, out_w_sub_.data(), Vs, 1.0f, w.logits.data(), Vs);
    else
      compute::gemm(false, true, rows, Vs, R, 1.0f, w.t.data(), R, out_w_sub_.data(), E, 1.0f, w.logits.data(), Vs);
    return;
  }
  if (bf16_) {
    out_bf16_.run(rows, w.t.data(), w.logits.data());
  } else if (packed && out_) {
    packed_linear(packed->output, dec_rnn_[0]->weights_version(), false, out_->weight().value.data(), V, R, V,
                  out_->bias()->value.data(), rows, w.t.data(), w.logits.data());
  } else if (packed) {  // tied: the target embeddings' table [V, E] transposed (R = E)
    packed_linear(packed->output, dec_rnn_[0]->weights_version(), true, tgt_emb_.table().value.data(), E, R, V,
                  out_bias_->value.data(), rows, w.t.data(), w.logits.data());
  } else if (out_) {
    out_->forward(rows, w.t.data(), w.logits.data());
  } else {
    for (int h = 0; h < rows; ++h)
      std::memcpy(w.logits.data() + h * V, out_bias_->value.data(), static_cast<std::size_t>(V) * sizeof(float));
    compute::gemm(false, true, rows, V, R, 1.0f, w.t.data(), R, tgt_emb_.table().value.data(), E, 1.0f, w.logits.data(),
                  V);
  }
}

void Seq2Seq::set_training_bf16(bool on) {
  if (on && !compute::has_bf16())
    throw ConfigError(
        "train.precision bf16 needs a CPU with AVX512-BF16 instructions, which this one lacks; use f32 "
        "(or auto: bf16 where the CPU has it)");
  train_bf16_ = on;
}

void Seq2Seq::for_each_cell(const std::function<void(nn::RnnCell&)>& f) {
  for (auto& layer : layers_)
    for (auto* cell : {layer.fwd.get(), layer.bwd.get()})
      if (cell) f(*cell);
  for (auto& cell : dec_rnn_) f(*cell);
}

void Seq2Seq::set_bf16(bool on) {
  bf16_ = on;
  readout_bf16_ = {};
  out_bf16_ = {};
  out_sub_bf16_ = {};
  if (on && !compute::has_bf16())
    throw ConfigError("bf16 needs a CPU with AVX512-BF16 instructions, which this one lacks; use f32");
  for_each_cell([on](nn::RnnCell& cell) { cell.set_bf16(on); });
  if (!on) return;
  const std::int64_t R = config_.readout_dim, V = config_.tgt_vocab, E = config_.emb_dim;
  readout_bf16_.set_weights(readout_.in(), readout_.out(), readout_.weight().value.data(), false,
                            readout_.bias() ? readout_.bias()->value.data() : nullptr);
  if (out_)
    out_bf16_.set_weights(R, V, out_->weight().value.data(), false, out_->bias()->value.data());
  else
    out_bf16_.set_weights(E, V, tgt_emb_.table().value.data(), true, out_bias_->value.data());
  if (!out_subset_.empty()) set_output_subset(out_subset_);
}

void Seq2Seq::set_output_subset(std::vector<std::int32_t> ids) {
  out_subset_ = std::move(ids);
  if (out_subset_.empty()) return;
  const std::int64_t R = config_.readout_dim, E = config_.emb_dim, V = config_.tgt_vocab;
  const auto Vs = static_cast<std::int64_t>(out_subset_.size());
  for (auto id : out_subset_)
    if (id < 0 || id >= V) throw ConfigError("output subset id " + std::to_string(id) + " is outside the vocabulary");
  out_b_sub_.resize({Vs});
  if (out_) {
    const float* W = out_->weight().value.data();  // [R, V]
    const float* b = out_->bias()->value.data();
    out_w_sub_.resize({R, Vs});
    for (std::int64_t r = 0; r < R; ++r)
      for (std::int64_t k = 0; k < Vs; ++k)
        out_w_sub_[r * Vs + k] = W[r * V + out_subset_[static_cast<std::size_t>(k)]];
    for (std::int64_t k = 0; k < Vs; ++k) out_b_sub_[k] = b[out_subset_[static_cast<std::size_t>(k)]];
  } else {
    const float* table = tgt_emb_.table().value.data();  // [V, E]
    out_w_sub_.resize({Vs, E});
    for (std::int64_t k = 0; k < Vs; ++k)
      std::memcpy(out_w_sub_.data() + k * E, table + out_subset_[static_cast<std::size_t>(k)] * E,
                  static_cast<std::size_t>(E) * sizeof(float));
    for (std::int64_t k = 0; k < Vs; ++k) out_b_sub_[k] = out_bias_->value[out_subset_[static_cast<std::size_t>(k)]];
  }
  if (bf16_) {
    if (out_)
      out_sub_bf16_.set_weights(R, Vs, out_w_sub_.data(), false, out_b_sub_.data());
    else
      out_sub_bf16_.set_weights(E, Vs, out_w_sub_.data(), true, out_b_sub_.data());
  }
}

void Seq2Seq::initial_state(const BatchView& b, float* s0, Tensor& init_in) {
  const int N = b.N;
  const std::int64_t K = key_dim_, D = config_.dec_hidden, Henc = config_.enc_hidden;
  const Tensor& annotations = layers_.back().out;
  const bool top_bi = layers_.back().bwd != nullptr;
  if (config_.dec_init == "zero") {
    std::memset(s0, 0, static_cast<std::size_t>(N * D) * sizeof(float));
    return;
  }
  const std::int64_t in = init_->in();
  init_in.resize({N, in});
  for (int n = 0; n < N; ++n) {
    float* x = init_in.data() + n * in;
    const int len = b.src_lengths[n];
    if (config_.dec_init == "mean") {
      std::memset(x, 0, static_cast<std::size_t>(in) * sizeof(float));
      for (int j = 0; j < len; ++j) add(K, annotations.data() + (static_cast<std::int64_t>(j) * N + n) * K, x);
      for (std::int64_t k = 0; k < K; ++k) x[k] /= static_cast<float>(len);
    } else if (top_bi) {  // <-h_1: the backward RNN's state at the first source word
      std::memcpy(x, annotations.data() + static_cast<std::int64_t>(n) * K + Henc,
                  static_cast<std::size_t>(Henc) * sizeof(float));
    } else {  // ->h_len: the last state of the forward RNN
      std::memcpy(x, annotations.data() + (static_cast<std::int64_t>(len - 1) * N + n) * K,
                  static_cast<std::size_t>(Henc) * sizeof(float));
    }
  }
  init_->forward(N, init_in.data(), s0);
  nn::tanh_forward(N * D, s0);
}

void Seq2Seq::backward_encoder(const BatchView& b, Tensor& dtop) {
  const int S = b.S, N = b.N;
  const std::int64_t rows = static_cast<std::int64_t>(S) * N, H = config_.enc_hidden;
  for (int l = static_cast<int>(layers_.size()) - 1; l >= 0; --l) {
    EncoderLayer& L = layers_[static_cast<std::size_t>(l)];
    const std::int64_t C = L.in.dim(2);
    Tensor& dx = ws_.enc_dx;
    dx.resize({S, N, C});
    if (!L.bwd) {
      L.run_fwd.steps->backward_sequence(dtop.data(), dx.data());
    } else {
      Tensor &dy_fwd = ws_.enc_dy_fwd, &dy_rev = ws_.enc_dy_rev;
      dy_fwd.resize({S, N, H});
      dy_rev.resize({S, N, H});
      for (int t = 0; t < S; ++t) {
        for (int n = 0; n < N; ++n) {
          const int len = b.src_lengths[n];
          const int to = t < len ? len - 1 - t : t;
          const float* g = dtop.data() + (static_cast<std::int64_t>(t) * N + n) * 2 * H;
          std::memcpy(dy_fwd.data() + (static_cast<std::int64_t>(t) * N + n) * H, g,
                      static_cast<std::size_t>(H) * sizeof(float));
          std::memcpy(dy_rev.data() + (static_cast<std::int64_t>(to) * N + n) * H, g + H,
                      static_cast<std::size_t>(H) * sizeof(float));
        }
      }
      L.run_fwd.steps->backward_sequence(dy_fwd.data(), dx.data());
      Tensor &dx_rev = ws_.enc_dx_rev, &dx_back = ws_.enc_dx_back;
      dx_rev.resize({S, N, C});
      dx_back.resize({S, N, C});
      L.run_rev.steps->backward_sequence(dy_rev.data(), dx_rev.data());
      reverse_within(dx_rev.data(), dx_back.data(), S, N, C, b.src_lengths);
      add(rows * C, dx_back.data(), dx.data());
    }
    if (dropout_active_ && ((l == 0 && config_.dropout_emb > 0) || (l > 0 && config_.dropout_rnn > 0))) {
      nn::dropout_backward(rows * C, L.drop_mask.data(), dx.data());
    }
    if (l == 0)
      src_emb_.backward(rows, b.src, dx.data());
    else
      std::swap(dtop, dx);
  }
}

}  // namespace gloss::model
