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
// (propagation, T, N); weights used by backward are reordered once per parameter update.
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
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

  // What backward needs from a training forward call. x and y stay owned by the caller and
  // must not change until backward; the rest is kept here.
  struct Cache {
    // Memory limit for the oneDNN workspace (0: none). When a sequence's workspace would be
    // larger, forward keeps only the states at the start of chunks of steps, and backward
    // recomputes each chunk's workspace before its backward: the same gradients, one more
    // forward pass of compute, memory of one chunk.
    std::size_t budget = 0;
    int T = 0, N = 0, chunk = 0;  // chunk: steps per chunk (== T when not chunked)
    const float* x = nullptr;
    const float* y = nullptr;
    Tensor h0, c0, hT, cT;
    Tensor bounds_h, bounds_c;         // chunked: the state at the start of each chunk [chunks, N, H]
    Tensor y_chunk, h_chunk, c_chunk;  // chunked: recomputed outputs in backward
    dnnl::memory workspace;
    Tensor workspace_buffer;  // reused across calls of the same or smaller size
  };

  // x [T, N, C] -> y [T, N, H]. h0, c0: initial state [N, H] (nullptr: zeros; c only for LSTM).
  // hT, cT: final state after step T (nullptr: not needed). With `cache`, runs
  // forward_training and fills it for backward; without, forward_inference.
  void forward(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT, float* cT,
               Cache* cache);

  // Gradients: dy [T, N, H] and dhT/dcT [N, H] (any may be nullptr: zero) in; dx [T, N, C] and
  // dh0/dc0 [N, H] out (overwritten; nullptr: not needed). Weight and bias gradients are
  // ADDED to the parameters' grad tensors.
  void backward(Cache& cache, const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0, float* dc0);

  // Translation in bf16: forward without a cache runs oneDNN's bf16 forward_inference (input,
  // hidden states, outputs and weights in bf16, f32 accumulation; the bias and the LSTM cell
  // state stay f32). The callers' buffers stay f32: converted on each call, so the state a
  // caller carries from step to step is rounded to bf16 (about 3 significant digits). Training
  // (forward with a cache, backward) is unaffected. Needs a CPU with AVX512-BF16 (the caller
  // checks compute::has_bf16()).
  void set_bf16(bool on) { bf16_ = on; }
  // Training in bf16 (train.precision bf16): forward with a cache and backward run oneDNN's
  // bf16 forward_training and backward (inputs, states, outputs and weights rounded to bf16;
  // the bias, the LSTM cell state, every gradient and the accumulation stay f32, as oneDNN
  // requires). The f32 weights stay the master copy; bf16 copies follow each update. Inference
  // (forward without a cache) is unaffected. Needs AVX512-BF16, as set_bf16.
  void set_bf16_training(bool on) {
    bf16_train_ = on;
    bwd_version_ = ~std::uint64_t{0};  // the backward copies change type
  }

  // Bytes a training forward call of this shape keeps in its Cache (workspace and states).
  std::size_t training_cache_bytes(int T, int N);

  // The reordered weight copy backward reads: refreshed after each update. A replica cell can
  // read its master's instead of keeping its own (the master's must be refreshed first, before
  // threads run both).
  void refresh_backward_weights();
  void share_backward_weights_of(RnnCell* master) { bwd_master_ = master; }

 private:
  struct Forward {
    std::unique_ptr<dnnl::primitive_desc> pd;  // lbr_gru_forward / lstm_forward
    dnnl::primitive prim;
  };
  struct Backward {
    std::unique_ptr<dnnl::primitive_desc> pd;
    dnnl::primitive prim;
  };
  Forward& forward_primitive(bool training, int T, int N);
  // forward without a cache: chunks of kInferenceChunk steps; hT and cT may be null.
  void forward_inference(int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT,
                         float* cT);
  // forward with a cache: fills it (initial and final states, and the workspace, or the
  // chunks' initial states when the cache's budget is smaller than training_cache_bytes).
  void forward_training(int T, int N, const float* x, const float* h0, const float* c0, float* y, Cache& cache);
  // One primitive call each; workspace null for inference.
  void run_forward(bool training, int T, int N, const float* x, const float* h0, const float* c0, float* y, float* hT,
                   float* cT, dnnl::memory* workspace);
  // run_forward's call in bf16 (inference with bf16_, training with bf16_train_): converts in,
  // runs, converts out.
  void run_forward_bf16(bool training, int T, int N, const float* x, const float* h0, const float* c0, float* y,
                        float* hT, float* cT, dnnl::memory* workspace);
  // run_backward's call with bf16_train_: x, h0, y and hT converted to bf16 (as forward had them).
  void run_backward_bf16(int T, int N, const float* x, const float* h0, const float* y, const float* hT,
                         std::unordered_map<int, dnnl::memory>& args);
  void refresh_bf16_weights();  // w_*_bf16_ from the f32 weights, once per update
  // The call's bf16 buffers sized for T steps of N rows, with x and h0 (and y, hT unless
  // nullptr) converted into them.
  void to_bf16_buffers(int T, int N, const float* x, const float* h0, const float* y, const float* hT);
  void run_backward(int T, int N, const float* x, const float* h0, const float* c0, const float* y, const float* hT,
                    const float* cT, dnnl::memory& workspace, const float* dy, const float* dhT, const float* dcT,
                    float* dx, float* dh0, float* dc0);
  dnnl::memory& prepare_workspace(Cache& cache, int T, int N);
  // backward of a chunked cache (all pointers non-null): chunk by chunk from the last, each
  // chunk's workspace recomputed from the state at its start.
  void backward_chunked(Cache& cache, const float* dy, const float* dhT, const float* dcT, float* dx, float* dh0,
                        float* dc0);
  Backward& backward_primitive(int T, int N);

  ParameterSet& params_;
  CellType cell_;
  std::int64_t input_, hidden_;
  Parameter& w_layer_;
  Parameter& w_iter_;
  Parameter& bias_;
  // by (training, bf16, T, N, threads): a primitive is built for the thread count it runs with
  std::map<std::tuple<bool, bool, int, int, int>, Forward> forward_;
  std::map<std::tuple<bool, int, int, int>, Backward> backward_;
  Tensor w_layer_bwd_, w_iter_bwd_;                          // ldgoi copies for backward
  std::vector<std::uint16_t> w_layer_bwd16_, w_iter_bwd16_;  // the same in bf16 (bf16_train_)
  RnnCell* bwd_master_ = nullptr;                            // whose copies to read instead
  std::uint64_t bwd_version_ = 0;
  Tensor zeros_;  // zero states and gradients, grown on demand
  bool bf16_ = false;
  bool bf16_train_ = false;
  std::vector<std::uint16_t> w_layer_bf16_, w_iter_bf16_;  // ldigo, converted when the weights change
  std::uint64_t bf16_version_ = ~std::uint64_t{0};
  std::vector<std::uint16_t> x_bf16_, h0_bf16_, y_bf16_, hT_bf16_;  // a call's bf16 buffers, reused
};

}  // namespace gloss::nn
