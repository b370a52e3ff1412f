#pragma once
// The attention encoder-decoder of Bahdanau et al. (2015), as the PyTorch peer builds it:
//   encoder  x = dropout(E_src[src]); stacked RNN layers, the first (or all) bidirectional;
//            annotations h_j = [->h_j ; <-h_j] of the top layer.
//   init     s_0 = tanh(W_init <-h_1 + b)   (last_backward: the backward RNN's state at the
//            first source word; `mean`: of the mean annotation; `zero`: s_0 = 0)
//   step i   c_i = Attention(s_{i-1}, h);  s_i = RNN([dropout(E_tgt[y_{i-1}]) ; c_i], s_{i-1})
//            (model.decoder conditional: s'_i = RNN_1(dropout(E_tgt[y_{i-1}]), s_{i-1});
//            c_i = Attention(s'_i, h);  s_i = RNN_2(c_i, s'_i))
//            (model.layer_norm: h layer-normalised, and the RNN input [. ; c_i] before each step)
//            (dec_layers > 1: layer l > 0 reads layer l-1's new state; s_i is the top layer's;
//            every layer starts from s_0; an LSTM's memory cell starts at zero and is carried)
//   readout  t_i = dropout(maxout_2(W_r [s_i ; c_i ; E_tgt[y_{i-1}]] + b_r))   (or tanh)
//   output   p(y_i) = softmax(W_o t_i + b_o)   (W_o = E_tgt^T when tied)
// Searches (greedy, beam, ensembles) live in decode/search.h and drive the inference step
// interface below (start, step, advance or reorder). Readout, output and loss run for all time steps of a batch in
// single GEMMs; the attention key projection runs once per batch. Variable source lengths inside a padded batch give
// the result of each sentence alone: the right-to-left pass reads each sentence reversed within its own length, and
// padding is masked in attention.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gloss/model/config.h"
#include "gloss/nn/attention.h"
#include "gloss/nn/layers.h"
#include "gloss/nn/parameter.h"
#include "gloss/nn/rnn.h"
#include "gloss/nn/rnn_steps.h"
#include "gloss/tensor/compute.h"
#include "gloss/tensor/packed_gemm.h"
#include "gloss/text/special_ids.h"
#include "gloss/util/rng.h"

namespace gloss::model {

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

  // ---- Training

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
  const std::vector<std::int32_t>& last_decoder_inputs() const { return ws_.tgt_in_used; }
  // Training in bf16 (train.precision): forward_backward with backward runs every GEMM
  // (compute::Bf16Gemms; the recurrent cells' through nn::RnnSteps) in bf16; the parameters,
  // gradients, attention scores, softmax and loss, layer normalisation, dropout and the cells'
  // element-wise equations stay f32. Validation and translation are unaffected. Needs
  // AVX512-BF16, else ConfigError.
  void set_training_bf16(bool on);

  // ---- Inference: the step interface that decode/search.h drives

  // Scratch of one inference step, reused across steps.
  struct StepScratch {
    Tensor c, emb, x, mid, rin, pre, t, logits;  // mid: the conditional decoder's s' [rows, D]
    std::vector<std::uint8_t> which;
  };
  // f32 inference's readout and output layer (full vocabulary) weights, packed once
  // (compute::PackedF32Weight) and remade when the weights move (validation between updates):
  // dnnl_sgemm would copy W inside every call, 13 GFLOP/s at 5 rows (beam 5, one sentence).
  // The decoder's cells likewise step through packed weights (their nn::RnnSteps, the ones
  // training uses). Each output row is computed on its own, so translations do not depend on
  // the batch size. As large as those weights (quick-en-de: 10.6 MB), one copy for all
  // data-parallel workers (compute::shared_packed).
  struct PackedStepWeights {
    compute::PackedCopy readout, output;
  };
  // The decoder of `rows` hypotheses over one batch of sources, owned by the caller and
  // filled by the model. Row h is hypothesis k of sentence group g: h = g * beam + k.
  struct DecoderState {
    int S = 0;                          // source positions of the batch
    int rows = 0;                       // hypotheses
    std::vector<std::int32_t> lengths;  // [rows]: the source length of each row's sentence
    // After step(): logits [rows, columns] (columns: the vocabulary, or the output subset;
    // output_word() maps them to ids) and the attention weights [S, rows].
    const Tensor& logits() const { return scratch.logits; }
    const Tensor& attention() const { return att_step.alpha; }

    // The model's own (no one else reads them):
    Tensor keys;                          // [S, N, K]: one row per sentence, shared by its hypotheses
    std::vector<std::int32_t> source_of;  // [rows]: the sentence (key row) of each hypothesis
    nn::AdditiveAttention::Memory memory;
    nn::AdditiveAttention::Step att_step;
    Tensor s, s_next, s_sel;  // [parts, rows, D]: parts 0..L-1 the layers' h, then (LSTM) their cells
    StepScratch scratch;
    PackedStepWeights packed;  // f32 (not set_bf16)
  };
  // A decoder state this model keeps for the searches of decode/search.h, reused from batch
  // to batch: its buffers keep their largest size, so that later batches allocate (and
  // page-fault) nothing. One search at a time per model, as for everything else here.
  DecoderState& search_state() { return search_state_; }
  // Frees it (training, after validation: its memory is not kept through the updates).
  void release_search_state() { search_state_ = DecoderState{}; }
  // Encodes the batch's sources (tgt fields unused) and starts `beam` rows per sentence, all
  // at the initial state.
  void start(DecoderState& state, const BatchView& batch, int beam);
  // One step of every row, fed the words `prev` [rows]: logits and attention of the step.
  void step(DecoderState& state, const std::int32_t* prev);
  // After step(): every row goes on with its own new state.
  void advance(DecoderState& state);
  // After step(): keeps parent.size() rows; new row r continues the new state of row
  // parent[r] and belongs to the sentence of row same_sentence[r] (rows may be dropped).
  void reorder(DecoderState& state, const std::vector<int>& parent, const std::vector<int>& same_sentence);

  // The output layer computes just these target ids (sorted; a lexical shortlist), logits
  // column k being word ids[k]. Empty: the whole vocabulary. Throws ConfigError for an id
  // outside the vocabulary.
  void set_output_subset(std::vector<std::int32_t> ids);
  const std::vector<std::int32_t>& output_subset() const { return out_subset_; }
  std::int32_t output_word(std::int64_t column) const {
    return out_subset_.empty() ? static_cast<std::int32_t>(column) : out_subset_[static_cast<std::size_t>(column)];
  }
  // Translation in bf16: the encoder's and decoder's recurrent layers (nn::RnnCell::set_bf16)
  // and the readout and output layers (oneDNN matmul; weights converted now and after
  // set_output_subset). Training is unaffected. Needs a CPU with AVX512-BF16
  // (compute::has_bf16()), else ConfigError.
  void set_bf16(bool on);

 private:
  // One direction of an encoder layer in training (nn::RnnSteps' sequence mode): its steps
  // and states [S + 1, N, H] (row 0 the zero initial state, row t + 1 the output at t; c: LSTM).
  struct EncoderRun {
    std::optional<nn::RnnSteps> steps;
    Tensor h, c;
  };
  struct EncoderLayer {
    std::unique_ptr<nn::RnnCell> fwd, bwd;  // bwd null for unidirectional layers
    Tensor in;                              // input [S, N, C] (layer 0: embeddings)
    Tensor in_rev, y_fwd, y_rev, out;       // reversed input, outputs (inference), concatenated output
    Tensor drop_mask;                       // dropout on the input (layers > 0)
    EncoderRun run_fwd, run_rev;            // training
  };
  // What forward_backward keeps between its stages, reused across batches: activations for
  // backward, backward buffers (only accumulators are zeroed), the decoder cells' steps.
  struct TrainingWorkspace {
    Tensor init_in, contexts, dec_in, tgt_emb_out, tgt_drop;  // [N, in], [T, N, K], [T, N, E + K], [T, N, E] x 2
    std::vector<Tensor> dec_h, dec_c;       // per decoder layer [T + 1, N, D]; row 0 the initial state
    Tensor dec_mid;                         // conditional decoder: s'_i of every step [T, N, D]
    std::vector<std::int32_t> tgt_in_used;  // the decoder's inputs (word dropout, scheduled sampling replace some)
    std::vector<std::int32_t> src_used;     // the source ids after word dropout
    const std::int32_t* src_ids = nullptr;  // the source ids the encoder read: b.src or src_used
    Tensor ctx_drop;                        // the annotations' dropout mask
    Tensor keys_pre, keys_stats;            // layer_norm: the annotations before it [S, N, K], its stats [S * N, 2]
    Tensor dec_in_pre, dec_in_stats;        // layer_norm: the decoder inputs before it [T, N, E + K], stats [T * N, 2]
    StepScratch sample;                     // scheduled sampling's readout
    Tensor readout_pre, readout_out, readout_drop, logits;
    std::vector<std::uint8_t> maxout_which;
    Tensor dt, ds_readout, dcontext, demb, dkeys, da;  // gradients; da [T, N, A]
    std::vector<Tensor> dh_next, dc_next;              // per decoder layer [N, D]: what step i + 1 sent back
    Tensor enc_dx, enc_dy_fwd, enc_dy_rev, enc_dx_rev, enc_dx_back;
    nn::AdditiveAttention::Memory memory;
    std::vector<nn::AdditiveAttention::Step> steps;
    std::vector<nn::RnnSteps> dec_steps;  // per decoder cell: its training steps (when backward follows)
  };

  // Stages of forward_backward, in order.
  void encode(const BatchView& b, const std::int32_t* src_ids, Rng* rng, bool training);
  // Encoder layer l's input into layers_[l].in [S, N, C] (layer 0: the source embeddings,
  // else the layer below's output), with its dropout when rng is given; returns C.
  std::int64_t encoder_layer_input(std::size_t l, int S, int N, const std::int32_t* src_ids, Rng* rng);
  // `cell` over x [S, N, C] from a zero state; returns its outputs [S, N, H]: in y, or with
  // `training` in run's states (its steps keep what backward needs).
  const float* encoder_rnn(nn::RnnCell& cell, EncoderRun& run, Tensor& y, const float* x, int S, int N, bool training);
  void decoder_start(const BatchView& b, Rng* rng);
  void decoder_forward(const BatchView& b, Rng* rng, bool backward);
  void readout_forward(const BatchView& b, Rng* rng);
  nn::LossSum output_and_loss(const BatchView& b, float label_smoothing, bool backward, float grad_scale);
  void readout_backward(const BatchView& b);
  void decoder_backward(const BatchView& b);
  struct DecoderGrads;  // decoder_backward's scratch (seq2seq.cc)
  // decoder_backward at step i, layer l: its state's gradient (from the readout or the layer
  // above, plus what step i + 1 sent back) through the RNN; what goes back to step i - 1 into
  // ws_.dh_next[l] (and dc_next), the input gradient into g.dx0 (layer 0) or g.dxl.
  void decoder_layer_backward(int l, int i, int N, DecoderGrads& g);
  // Step i's RNN input gradient dx0 [N, E + K] (through the layer normalisation, if any) added
  // to the embedding's and the context's gradients; returns the context's, [N, K].
  float* decoder_input_backward(int i, int N, Tensor& dx0);
  void init_backward(const BatchView& b);
  void backward_encoder(const BatchView& b, Tensor& dtop);
  // decoder_forward's step i: the RNN input [E_tgt[y_{i-1}] ; c_i] into ws_.dec_in (layer-normalised
  // when model.layer_norm, its input kept in ws_.dec_in_pre); c: the context [N, K].
  void decoder_step_input(int i, int N, const float* c);
  // Scheduled sampling after step i: each sentence's input to step i + 1 becomes, unless the
  // coin (teacher_forcing_) keeps the reference, the model's most probable word (its
  // embedding, with step i + 1's dropout mask, replaces the reference's in ws_.tgt_emb_out).
  void sample_next_inputs(const BatchView& b, int i, const float* c, Rng& rng);
  // Decoder layer l at teacher-forced step i: reads its state at row i, writes h (and c); with
  // `backward`, through ws_.dec_steps (which keeps the gates).
  void run_decoder_layer(int l, int i, int N, bool backward, float* h_out, float* c_out);
  bool conditional() const { return conditional_; }
  // Teacher-forced step i of the two decoders (decoder_forward's body; through ws_.dec_steps when backward).
  void bahdanau_step(int i, int N, bool backward);
  void conditional_step(int i, int N, bool backward);
  // The conditional decoder's cell 0 (word RNN: E y_{i-1}, s_{i-1} -> h_out) or cell 1 (context
  // RNN: c_i, s'_i -> h_out) at teacher-forced step i.
  void run_conditional_cell(int cell, int i, int N, bool backward, float* h_out);
  // Before the first step of a batch that backward follows: each decoder cell's RnnSteps
  // pointed at its inputs and states in ws_ (their final sizes: after every resize).
  void begin_decoder_steps(int T, int N, bool sampling);
  void conditional_step_backward(int i, int N, DecoderGrads& g, float* da);
  std::vector<nn::Linear::Part> readout_parts(const BatchView& b);

  // Inference helpers.
  // step()'s RNNs for either decoder: c.s -> c.s_next, the context into c.scratch.c (c.scratch.emb
  // holds the previous words' embeddings).
  void bahdanau_step(DecoderState& c);
  void conditional_step(DecoderState& c);
  int state_parts() const { return config_.dec_layers * (config_.cell == nn::CellType::kLstm ? 2 : 1); }
  // s0 [N, D] -> state [parts, N*B, D]: every layer's h starts at s0 of its sentence, cells at 0.
  void expand_state(const float* s0, int N, int B, float* state) const;
  // Readout and output layer of rows [s ; c ; emb] into w.logits (w.rin, w.pre, w.t scratch),
  // f32 through `packed`'s weights (nullptr: dnnl_sgemm, as training's scheduled sampling).
  void readout_logits(int rows, const float* s, const float* c, const float* emb, StepScratch& w,
                      PackedStepWeights* packed);
  // readout_logits' two parts: the readout of rows [s ; c ; emb] into w.t [rows, R]; the
  // output layer of w.t into w.logits [rows, V] (or [rows, subset] with set_output_subset).
  void readout_step(int rows, const float* s, const float* c, const float* emb, StepScratch& w,
                    PackedStepWeights* packed);
  void output_step(int rows, StepScratch& w, PackedStepWeights* packed);
  // Decoder cell l, one inference step of `rows` rows: x [rows, in], state h (c: LSTM) ->
  // h_out (c_out); f32 through its nn::RnnSteps (packed weights), bf16 through its oneDNN primitive.
  void cell_step(int l, int rows, const float* x, float* h, float* cs, float* h_out, float* c_out);
  // ws_.dec_steps, made at the first call: each decoder cell's RnnSteps (training, and f32 inference).
  std::vector<nn::RnnSteps>& decoder_steps();
  // s0 = tanh(W_init x + b) of the encoded batch ([N, D]; init_in: scratch [N, in]).
  void initial_state(const BatchView& b, float* s0, Tensor& init_in);

  ModelConfig config_;
  bool conditional_;  // config_.decoder == "conditional", asked at every time step
  std::int64_t key_dim_;
  bool dropout_active_ = false;
  nn::Embedding src_emb_, tgt_emb_;
  std::vector<EncoderLayer> layers_;
  std::unique_ptr<nn::Linear> init_;
  nn::AdditiveAttention attention_;
  std::vector<std::unique_ptr<nn::RnnCell>> dec_rnn_;  // "decoder/rnn", "decoder/rnn1", ...
  nn::Linear readout_;
  std::unique_ptr<nn::Linear> out_;                     // untied output layer
  std::unique_ptr<nn::LayerNorm> ln_keys_, ln_dec_in_;  // model.layer_norm: annotations, decoder RNN inputs
  nn::Parameter* out_bias_ = nullptr;                   // tied: bias only

  TrainingWorkspace ws_;
  float teacher_forcing_ = 1.0f;

  std::vector<std::int32_t> out_subset_;
  Tensor out_w_sub_, out_b_sub_;  // the subset's output weights [R, V'] (tied: [V', E]) and bias
  DecoderState search_state_;     // search_state()
  bool bf16_ = false;
  bool train_bf16_ = false;
  void for_each_cell(const std::function<void(nn::RnnCell&)>& f);  // every encoder and decoder RNN cell
  compute::Bf16Matmul readout_bf16_, out_bf16_, out_sub_bf16_;
};

}  // namespace gloss::model
