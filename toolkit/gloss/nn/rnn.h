#pragma once
// Recurrent layers on oneDNN 2.6 RNN primitives.
//
// RnnCell is one layer in one direction (left to right): oneDNN `lbr_gru` (linear-before-
// reset GRU, the same function as PyTorch's nn.GRU and Marian's GRU) or `lstm`.
// Parameters (canonical layout ldigo, what checkpoints store):
//   <name>/weights_layer [C, G, H]   input weights,     G = 3 (GRU: u, r, o) or 4 (LSTM: i, f, c~, o)
//   <name>/weights_iter  [H, G, H]   recurrent weights
//   <name>/bias          [4, H]      GRU: u, r, o, u' (u' inside the reset product); LSTM: i, f, c~, o
// GRU:  u = sig(W_u x + U_u h + b_u), r = sig(W_r x + U_r h + b_r),
//       o = tanh(W_o x + b_o + r * (U_o h + b_u')),  h' = u * h + (1 - u) * o.
// LSTM: i, f, o = sig(...), c~ = tanh(...), c' = f * c + i * c~, h' = o * tanh(c').
//
// Layouts: sequences are time-major [T, N, C]; states [N, H]. Primitives are cached by
// (precision, T, N, threads). RnnCell runs inference (the encoder in validation and
// translation, the decoder's steps in bf16); training, and the decoder's f32 search steps, run
// the same cell through nn::RnnSteps (rnn_steps.h), which reads (and updates) these parameters.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "gloss/nn/parameter.h"

namespace gloss::nn {

enum class CellType { kGru, kLstm };
CellType parse_cell(std::string_view name);  // "gru" or "lstm"

class RnnCell {
 public:
  RnnCell(ParameterSet& params, const std::string& name, CellType cell, std::int64_t input, std::int64_t hidden);

  CellType cell() const { return cell_; }
  std::int64_t input_size() const { return input_; }
  std::int64_t hidden_size() const { return hidden_; }
  int gates() const { return cell_ == CellType::kGru ? 3 : 4; }
  // The parameters, as the header's comment lays them out (RnnSteps computes with them).
  Parameter& weights_layer() { return w_layer_; }
  Parameter& weights_iter() { return w_iter_; }
  Parameter& bias() { return bias_; }
  std::uint64_t weights_version() const { return params_.version(); }  // moves when the values change

  // x [T, N, C] -> y [T, N, H] (inference: oneDNN forward_inference; training runs a cell
  // through nn::RnnSteps, rnn_steps.h). h0, c0: initial state [N, H] (nullptr: zeros; c only
  // for LSTM). hT, cT: final state after step T (nullptr: not needed).
  void forward(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT, float* cT);

  // Translation in bf16: forward runs oneDNN's bf16 forward_inference (input, hidden states,
  // outputs and weights in bf16, f32 accumulation; the bias and the LSTM cell state stay f32).
  // The callers' buffers stay f32: converted on each call, so the state a caller carries from
  // step to step is rounded to bf16 (about 3 significant digits). Needs a CPU with AVX512-BF16
  // (the caller checks compute::has_bf16()).
  void set_bf16(bool on) { bf16_ = on; }

 private:
  struct Forward {
    std::unique_ptr<dnnl::primitive_desc> pd;  // lbr_gru_forward / lstm_forward
    dnnl::primitive prim;
  };
  Forward& forward_primitive(int T, int N);
  // One primitive call of T steps (forward's chunks; hT, cT non-null).
  void run_forward(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT, float* cT);
  // run_forward's call with bf16_: converts in, runs, converts out.
  void run_forward_bf16(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT, float* cT);
  void refresh_bf16_weights();  // w_*_bf16_ from the f32 weights, once per update
  // The call's bf16 buffers sized for T steps of N rows, with x and h0 converted into them.
  void to_bf16_buffers(int T, int N, const float* x, const float* h0);

  ParameterSet& params_;
  CellType cell_;
  std::int64_t input_, hidden_;
  Parameter& w_layer_;
  Parameter& w_iter_;
  Parameter& bias_;
  // by (bf16, T, N, threads): a primitive is built for the thread count it runs with
  std::map<std::tuple<bool, int, int, int>, Forward> forward_;
  Tensor zeros_;  // zero states, grown on demand
  bool bf16_ = false;
  std::vector<std::uint16_t> w_layer_bf16_, w_iter_bf16_;  // ldigo, converted when the weights change
  std::uint64_t bf16_version_ = ~std::uint64_t{0};
  std::vector<std::uint16_t> x_bf16_, h0_bf16_, y_bf16_, hT_bf16_;  // a call's bf16 buffers, reused
};

}  // namespace gloss::nn
