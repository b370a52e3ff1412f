#pragma once
// The attention encoder-decoder of Bahdanau et al. (2015), as the PyTorch peer builds it:
//   encoder  x = dropout(E_src[src]); stacked RNN layers, the first (or all) bidirectional;
//            annotations h_j = [->h_j ; <-h_j] of the top layer.
//   init     s_0 = tanh(W_init <-h_1 + b)   (last_backward: the backward RNN's state at the
//            first source word; `mean`: of the mean annotation; `zero`: s_0 = 0)
//   step i   c_i = Attention(s_{i-1}, h);  s_i = RNN([dropout(E_tgt[y_{i-1}]) ; c_i], s_{i-1})
//   readout  t_i = dropout(maxout_2(W_r [s_i ; c_i ; E_tgt[y_{i-1}]] + b_r))   (or tanh)
//   output   p(y_i) = softmax(W_o t_i + b_o)   (W_o = E_tgt^T when tied)
// Readout, output and loss run for all time steps of a batch in single GEMMs; the attention
// key projection runs once per batch. Variable source lengths inside a padded batch give the
// result of each sentence alone: the right-to-left pass reads each sentence reversed within
// its own length, and padding is masked in attention.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gloss/nn/attention.h"
#include "gloss/nn/layers.h"
#include "gloss/nn/parameter.h"
#include "gloss/nn/rnn.h"
#include "gloss/util/rng.h"

namespace gloss::model {

struct ModelConfig {
  nn::CellType cell = nn::CellType::kGru;
  std::int64_t src_vocab = 8000, tgt_vocab = 8000;
  std::int64_t emb = 256;
  std::int64_t enc_hidden = 256;        // per direction
  int enc_layers = 1;
  std::string bidirectional = "first";  // first, all, none
  std::int64_t dec_hidden = 512;
  std::int64_t att = 512;
  std::string readout = "maxout";       // maxout (pool 2) or tanh
  std::int64_t readout_dim = 256;
  std::string dec_init = "last_backward";  // last_backward, mean, zero
  bool tie_target_embeddings = false;   // W_o = E_tgt^T (needs readout_dim == emb)
  float dropout_emb = 0.2f, dropout_rnn = 0.2f, dropout_readout = 0.2f;
};
void validate(const ModelConfig& config);  // throws ConfigError naming the key

// One batch, time-major: src [S, N], tgt_in / tgt_out [T, N] (pad 0; tgt_in starts with BOS,
// tgt_out ends with EOS), src_lengths [N] >= 1.
struct BatchView {
  int N = 0, S = 0, T = 0;
  const std::int32_t* src = nullptr;
  const std::int32_t* src_lengths = nullptr;
  const std::int32_t* tgt_in = nullptr;
  const std::int32_t* tgt_out = nullptr;
};

class Seq2Seq {
 public:
  // Registers every parameter under "encoder/..." and "decoder/..." in `params`.
  Seq2Seq(const ModelConfig& config, nn::ParameterSet& params);
  const ModelConfig& config() const { return config_; }

  // Teacher-forced loss of one batch (sum over target tokens, and their count). With `rng`,
  // dropout is applied (training); with `backward`, gradients of grad_scale * loss are added
  // to the parameters' grad tensors.
  nn::LossSum forward_backward(const BatchView& batch, float label_smoothing, Rng* rng, bool backward,
                               float grad_scale = 1.0f);

  // Greedy translation of the batch's sources (tgt fields unused): the most probable word at
  // each step until EOS or max_len[n] words; returns subword ids without EOS.
  std::vector<std::vector<std::int32_t>> greedy(const BatchView& batch, const std::vector<int>& max_len);

  // Beam search over the batch's sentences at once (sentences x beam hypotheses in every
  // oneDNN step call). Hypotheses end with EOS or at max_len[n] words; finished ones are
  // ranked by log-probability / length^length_penalty. Returns up to n_best per sentence,
  // best first.
  struct Hypothesis {
    std::vector<std::int32_t> ids;  // without EOS
    double log_prob = 0;            // sum of word log-probabilities (EOS included)
    double score = 0;               // normalised: log_prob / length^alpha
  };
  std::vector<std::vector<Hypothesis>> beam_search(const BatchView& batch, const std::vector<int>& max_len,
                                                   int beam_size, float length_penalty, int n_best);

 private:
  struct EncoderLayer {
    std::unique_ptr<nn::RnnCell> fwd, bwd;  // bwd null for unidirectional layers
    Tensor in;                              // input [S, N, C] (layer 0: embeddings)
    Tensor in_rev, y_fwd, y_rev, out;       // reversed input, outputs, concatenated output
    Tensor drop_mask;                       // dropout on the input (layers > 0)
    nn::RnnCell::Cache cache_fwd, cache_bwd;
  };
  void encode(const BatchView& b, Rng* rng, bool training);
  // Scratch of one inference step, reused across steps.
  struct InferScratch {
    Tensor c, emb, x, rin, pre, t, logits;
    std::vector<std::uint8_t> which;
  };
  // One inference step for `rows` hypotheses: attention on s, RNN input [E y_prev ; c],
  // s_next, readout and output layer into w.logits [rows, V].
  void infer_step(nn::AdditiveAttention::Memory& memory, nn::AdditiveAttention::Step& step, int rows,
                  const std::int32_t* prev, const float* s, float* s_next, InferScratch& w);
  void initial_state(const BatchView& b, float* s0);
  void backward_encoder(const BatchView& b, Tensor& dtop);

  ModelConfig config_;
  std::int64_t key_dim_;
  bool dropout_active_ = false;
  nn::Embedding src_emb_, tgt_emb_;
  std::vector<EncoderLayer> layers_;
  std::unique_ptr<nn::Linear> init_;
  nn::AdditiveAttention attention_;
  nn::RnnCell dec_rnn_;
  nn::Linear readout_;
  std::unique_ptr<nn::Linear> out_;   // untied output layer
  nn::Parameter* out_bias_ = nullptr; // tied: bias only

  // Per-batch workspace, reused.
  Tensor src_drop_, init_in_, s0_pre_, states_, contexts_, dec_in_, tgt_emb_out_, tgt_drop_;
  Tensor readout_in_, readout_pre_, readout_out_, readout_drop_, logits_;
  std::vector<std::uint8_t> maxout_which_;
  Tensor bwd_dt_, bwd_dpre_, bwd_dreadout_in_, bwd_dcontext_, bwd_demb_, bwd_dkeys_;
  nn::AdditiveAttention::Memory memory_;
  std::vector<nn::AdditiveAttention::Step> steps_;
  std::vector<nn::RnnCell::Cache> dec_caches_;
};

}  // namespace gloss::model
