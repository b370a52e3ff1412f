#pragma once
// The attention encoder-decoder of Bahdanau et al. (2015), as the PyTorch peer builds it:
//   encoder  x = dropout(E_src[src]); stacked RNN layers, the first (or all) bidirectional;
//            annotations h_j = [->h_j ; <-h_j] of the top layer.
//   init     s_0 = tanh(W_init <-h_1 + b)   (last_backward: the backward RNN's state at the
//            first source word; `mean`: of the mean annotation; `zero`: s_0 = 0)
//   step i   c_i = Attention(s_{i-1}, h);  s_i = RNN([dropout(E_tgt[y_{i-1}]) ; c_i], s_{i-1})
//            (dec_layers > 1: layer l > 0 reads layer l-1's new state; s_i is the top layer's;
//            every layer starts from s_0; an LSTM's memory cell starts at zero and is carried)
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
#include "gloss/tensor/compute.h"
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
  int dec_layers = 1;
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

  // Scheduled sampling (Bengio et al. 2015), training only: at each step after the first, each
  // sentence is fed its reference word with probability `ratio`, otherwise the model's own
  // most probable word of the previous step (no gradient through the choice). 1: teacher forcing.
  void set_teacher_forcing(float ratio) { teacher_forcing_ = ratio; }
  // The decoder inputs of the last forward_backward call [T, N] (tgt_in, or sampled words).
  const std::vector<std::int32_t>& last_decoder_inputs() const { return tgt_in_used_; }
  // Memory for the recurrent layers' training caches (oneDNN workspaces): half for the
  // decoder's steps, half shared by the encoder's cells. What does not fit is recomputed
  // during backward (decoder steps beyond the budget; encoder sequences in chunks): the same
  // gradients, a little more compute, bounded memory for long batches.
  void set_rnn_cache_bytes(std::size_t bytes) { rnn_cache_bytes_ = bytes; }

  // Inference only: the output layer computes just these target ids (sorted; a lexical
  // shortlist), logits column k being word ids[k]. Empty: the whole vocabulary.
  void set_output_subset(std::vector<std::int32_t> ids);
  // Inference only: the readout and output layers in bf16 (oneDNN matmul; weights converted
  // now and after set_output_subset). Needs a CPU with AVX512-BF16 (compute::has_bf16()).
  void set_bf16(bool on);
  // Data-parallel training: this replica's recurrent layers read `master`'s reordered backward
  // weights; prepare_backward() refreshes this model's (call it on the master before workers run).
  void share_backward_weights_of(Seq2Seq& master);
  void prepare_backward();
  std::int32_t output_word(std::int64_t column) const {
    return out_subset_.empty() ? static_cast<std::int32_t>(column) : out_subset_[static_cast<std::size_t>(column)];
  }

  // Greedy translation of the batch's sources (tgt fields unused): the most probable word at
  // each step until EOS or max_len[n] words; returns subword ids without EOS.
  std::vector<std::vector<std::int32_t>> greedy(const BatchView& batch, const std::vector<int>& max_len);

  // Beam search over the batch's sentences at once (sentences x beam hypotheses in every
  // oneDNN step call; a sentence whose search ended leaves the batch, which shrinks).
  // Hypotheses end with EOS or at max_len[n] words; finished ones are ranked by
  // log-probability / length^length_penalty (+ the coverage penalty). Returns up to n_best
  // per sentence, best first.
  struct SearchOptions {
    int beam_size = 5;
    float length_penalty = 1.0f;  // alpha of score = log p / length^alpha
    int n_best = 1;
    float coverage_penalty = 0;   // beta of Wu et al. (2016): + beta * sum_j log(min(sum_i a_ij, 1))
    int min_length = 0;           // EOS is not allowed before this many subwords
    bool word_scores = false;     // keep each output subword's log-probability
    bool attention = false;       // keep the attention weights of each output subword
    // With an output subset (set_output_subset): per sentence n of the batch, the columns
    // (positions in the subset) it may produce; its probabilities are normalised over them.
    const std::vector<std::vector<std::int32_t>>* allowed = nullptr;
  };
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
  std::vector<std::vector<Hypothesis>> beam_search(const BatchView& batch, const std::vector<int>& max_len,
                                                   const SearchOptions& options);
  // An ensemble: the models (same vocabularies) search together, each word scored by the mean
  // of the models' log-probabilities; attention outputs are the models' mean.
  static std::vector<std::vector<Hypothesis>> beam_search(const std::vector<Seq2Seq*>& models, const BatchView& batch,
                                                          const std::vector<int>& max_len, const SearchOptions& options);
  std::vector<std::vector<Hypothesis>> beam_search(const BatchView& batch, const std::vector<int>& max_len,
                                                   int beam_size, float length_penalty, int n_best) {
    SearchOptions o;
    o.beam_size = beam_size;
    o.length_penalty = length_penalty;
    o.n_best = n_best;
    return beam_search(batch, max_len, o);
  }

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
  // Decoder state of `rows` hypotheses for inference: [parts, rows, D], parts 0..L-1 the
  // layers' h, then (LSTM) L..2L-1 their memory cells. The top layer's h is the query.
  int state_parts() const { return config_.dec_layers * (config_.cell == nn::CellType::kLstm ? 2 : 1); }
  // s0 [N, D] -> state [parts, N*B, D]: every layer's h starts at s0 of its sentence, cells at 0.
  void expand_state(const float* s0, int N, int B, float* state) const;
  // One inference step for `rows` hypotheses: attention on the top h, RNN input [E y_prev ; c],
  // state_next, readout and output layer into w.logits [rows, V].
  void infer_step(nn::AdditiveAttention::Memory& memory, nn::AdditiveAttention::Step& step, int rows,
                  const std::int32_t* prev, const float* state, float* state_next, InferScratch& w);
  // Readout and output layer of rows [s ; c ; emb] into w.logits (w.rin, w.pre, w.t scratch).
  void readout_logits(int rows, const float* s, const float* c, const float* emb, InferScratch& w);
  void initial_state(const BatchView& b, float* s0);
  // One model's part of a beam search: rows h = group * B + k over the active sentences.
  struct Search {
    int S = 0, H = 0;
    Tensor keys;                       // [S, N, K]: one row per sentence, shared by its hypotheses
    std::vector<std::int32_t> lengths; // [H]
    std::vector<std::int32_t> source_of;  // [H]: the sentence (key row) of each hypothesis
    nn::AdditiveAttention::Memory memory;
    nn::AdditiveAttention::Step step;  // step.alpha [S, H] after search_step
    Tensor s, s_next, s_sel;           // [parts, H, D]
    InferScratch w;                    // w.logits [H, V] after search_step
  };
  void search_start(Search& c, const BatchView& b, int beam);
  void search_step(Search& c, const std::int32_t* prev);
  // Keeps rows: new row r takes the state of next_parent[r] and the source of same_sentence[r].
  void search_select(Search& c, const std::vector<int>& next_parent, const std::vector<int>& same_sentence);
  void backward_encoder(const BatchView& b, Tensor& dtop);

  ModelConfig config_;
  std::int64_t key_dim_;
  bool dropout_active_ = false;
  nn::Embedding src_emb_, tgt_emb_;
  std::vector<EncoderLayer> layers_;
  std::unique_ptr<nn::Linear> init_;
  nn::AdditiveAttention attention_;
  std::vector<std::unique_ptr<nn::RnnCell>> dec_rnn_;  // "decoder/rnn", "decoder/rnn1", ...
  nn::Linear readout_;
  std::unique_ptr<nn::Linear> out_;   // untied output layer
  nn::Parameter* out_bias_ = nullptr; // tied: bias only

  // Per-batch workspace, reused.
  Tensor src_drop_, init_in_, s0_pre_, contexts_, dec_in_, tgt_emb_out_, tgt_drop_;
  std::vector<Tensor> dec_h_, dec_c_;  // per decoder layer [T + 1, N, D]; row 0 the initial state
  std::vector<std::int32_t> tgt_in_used_;  // the decoder's inputs (scheduled sampling replaces some)
  float teacher_forcing_ = 1.0f;
  std::size_t rnn_cache_bytes_ = std::size_t{128} << 20;
  InferScratch sample_w_;
  std::vector<std::int32_t> out_subset_;
  Tensor out_w_sub_, out_b_sub_;  // the subset's output weights [R, V'] (tied: [V', E]) and bias
  bool bf16_ = false;
  compute::Bf16Matmul readout_bf16_, out_bf16_, out_sub_bf16_;
  Tensor readout_pre_, readout_out_, readout_drop_, logits_;
  std::vector<std::uint8_t> maxout_which_;
  Tensor enc_dx_, enc_dy_fwd_, enc_dy_rev_, enc_dx_rev_, enc_dx_back_;
  Tensor bwd_dt_, bwd_ds_readout_, bwd_dcontext_, bwd_demb_, bwd_dkeys_;
  nn::AdditiveAttention::Memory memory_;
  Tensor bwd_da_;  // [T, N, A]
  std::vector<nn::AdditiveAttention::Step> steps_;
  std::vector<std::vector<nn::RnnCell::Cache>> dec_caches_;  // [layer][step] for the cached steps
  nn::RnnCell::Cache dec_recompute_;                          // the steps beyond the budget
};

}  // namespace gloss::model
