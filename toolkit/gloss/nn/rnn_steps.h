#pragma once
// Training an RnnCell with Gloss's own GEMMs instead of oneDNN's RNN primitive, in two modes:
// - step by step (forward, backward): for the decoder, whose input at step i (the attention's
//   context) depends on the state after step i - 1;
// - a whole sequence (forward_sequence, backward_sequence): for the encoder, whose input is
//   known before step 0, so x W_layer of all T steps is one GEMM of T x N rows, and likewise
//   dx = dgates W_layer^T after the last step back.
//
// The same function as RnnCell (its parameters, layouts and equations, rnn.h), computed as
//   gates = x W_layer + h W_iter + bias, then the cell's element-wise equations,
// and backward as
//   dx = dgates_x W_layer^T, dh_prev = dgates_h W_iter^T + (the element-wise part),
// per step, while the weight and bias gradients of all steps come from one GEMM each at the
// end (finish_backward): K = T x N rows instead of N, and the weight gradients read and
// written once per sequence instead of once per step (a one-step oneDNN backward reads and
// writes all of them: 7.9 MB for a 768-input, 512-state GRU). What a step keeps for backward
// is its gates (GRU: u, r, o and U_o h + b_u', 4 x [N, H]; LSTM: i, f, c~, o and tanh(c'),
// 5 x [N, H]), which its backward overwrites with their gradients; inputs and states stay in
// the caller's buffers.
//
// Inside a compute::Bf16Gemms scope the GEMMs run in bf16 like every other compute::gemm, with
// bf16 copies of the weights converted once per update (not at every step; a step's GEMMs read
// them packed in oneDNN's blocked layout, compute::PackedBf16Weight). In f32 a step's GEMMs
// read W and W^T from copies packed once per update (compute::PackedF32Weight; dnnl_sgemm
// would copy B inside every call, and reads a transposed B of few rows slowly). Each copy is
// as large as its weights (up to 15 columns more) and shared by the workers' RnnSteps of the
// same cell (compute::shared_packed: replicas read the master's weights); the encoder's
// sequence mode packs no W_layer (its x W and dx GEMMs have all steps' rows).
#include <cstdint>
#include <vector>

#include "gloss/nn/rnn.h"
#include "gloss/tensor/compute.h"
#include "gloss/tensor/packed_gemm.h"

namespace gloss::nn {

class RnnSteps {
 public:
  // Uses cell's parameters (values read at each call, gradients added to); cell must outlive this.
  explicit RnnSteps(RnnCell& cell) : cell_(&cell) {}

  // Starts a sequence of T steps of N rows. The caller owns these buffers, fills step i's rows
  // before forward(i) and leaves them unchanged until finish_backward():
  //   x [T, N, C]: step i's input at x + i N C;
  //   h [T, N, H]: the state before step i at h + i N H (c likewise, LSTM only; else nullptr).
  // (Sequence mode: T + 1 rows, rows 1..T written by forward_sequence.)
  // Known columns (step mode, f32; `known` > 0): known_x [T, N, known] holds the first `known`
  // columns of every step's input, all filled before forward(0) (the decoder's target
  // embeddings under teacher forcing). forward(0) then computes their x W for all steps as one
  // GEMM of T x N rows, each step adding only its other columns'; backward(i) writes only dx's
  // other columns (the first `known` left as they are), and finish_backward adds the known
  // columns' gradient of all steps. x's known columns must hold the same values by
  // finish_backward (the weight gradient reads x). In bf16 the known columns are ignored
  // (known() == 0: every step reads its whole input, as without them).
  // std::logic_error when an LSTM gets no c, or known is outside [0, C] or without known_x.
  void begin(int T, int N, const float* x, float* h, float* c, const float* known_x = nullptr, std::int64_t known = 0);
  // The known columns in effect since begin (0: none).
  std::int64_t known() const { return known_; }

  // Step i (0 <= i < T): writes the new state h_out [N, H] (and c_out, LSTM) and keeps the gates.
  void forward(int i, float* h_out, float* c_out);

  // Back through step i, after its forward and the backward of every later step. dh [N, H]:
  // the gradient of h_out (dc: of c_out, LSTM; nullptr: zero). Writes dx [N, C] and dh_prev
  // [N, H] (dc_prev, LSTM), all overwritten; keeps the gate gradients for finish_backward.
  void backward(int i, const float* dh, const float* dc, float* dx, float* dh_prev, float* dc_prev);

  // After step 0's backward: ADDS the weight and bias gradients of all T steps to the cell's
  // parameters' gradients, and with known columns their input gradient of all steps to dknown
  // [T, N, known()] (nullptr: not wanted).
  void finish_backward(float* dknown = nullptr);

  // Sequence mode, after begin() with h and c of T + 1 rows (row 0 the initial state): all T
  // steps, step i's new state written at h + (i + 1) N H (c likewise).
  void forward_sequence();
  // Back through all T steps, then finish_backward(). dy [T, N, H]: the gradient of each step's
  // new state (rows 1..T of h); the initial state's gradient is not computed. Writes dx [T, N, C].
  void backward_sequence(const float* dy, float* dx);

 private:
  std::int64_t gate_width() const;  // floats per row kept by forward: 4 H (GRU) or 5 H (LSTM)
  // Step i's element-wise part from gx = x W_layer (row n at gx + n ldx; may be the gates' own
  // rows, which these overwrite in place) and gh_ = h W_iter.
  void gru_forward(int i, const float* gx, std::int64_t ldx, float* h_out);
  void lstm_forward(int i, const float* gx, std::int64_t ldx, float* h_out, float* c_out);
  // backward()'s work without the dx GEMM: the gate gradients of step i and dh_prev (dc_prev).
  void backward_state(int i, const float* dh, const float* dc, float* dh_prev, float* dc_prev);
  // The pre-activation gradients of step i over its gates in gates_ (GRU: du, dr, do, do r,
  // and the recurrent ones du, dr, do r into gh_; dh_prev gets the element-wise part u dh;
  // LSTM: di, df, dc~, do, and dc_prev).
  void gru_backward(int i, const float* dh, float* dh_prev);
  void lstm_backward(int i, const float* dh, const float* dc, float* dc_prev);
  // C [m x n] (row stride ldc) = a [m x k] (row stride lda) op(W) + beta C for W the layer's
  // (iter: false) or the recurrent weights (true), transposed when `trans`; in bf16 inside a
  // Bf16Gemms scope. `first` (f32, layer weights only): W's rows from `first` on, i.e. the
  // input columns from `first` on.
  void weight_gemm(bool iter, bool trans, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                   std::int64_t lda, float beta, float* c, std::int64_t ldc, std::int64_t first = 0);
  // f32, for one step's GEMMs: the layer's (iter: false) or the recurrent weights' rows from
  // `first` on, op() applied, packed (compute::PackedCopy: shared by the workers, remade when the
  // weights' version or `first` moves).
  const compute::PackedF32Weight& packed(bool iter, bool trans, std::int64_t first);

  RnnCell* cell_;
  int T_ = 0, N_ = 0;
  const float* x_ = nullptr;
  const float* known_x_ = nullptr;
  std::int64_t known_ = 0;
  float* h_ = nullptr;
  float* c_ = nullptr;
  Tensor gates_;                      // [T, N, gate_width()]: the gates, after backward their gradients
  Tensor gx_, gh_;                    // one step's x W_layer and h W_iter, [N, G H]
  Tensor carry_h_, carry_c_;          // backward_sequence: the gradient sent to step i - 1
  compute::PackedCopy packed_[2][2];  // [0] W_layer, [1] W_iter; [t] used transposed (t = 1) or not (f32)
  // One weight's bf16 copies, each remade when the weights' version moves: dense for the
  // GEMMs of all steps' rows (sequence mode), packed for one step's rows, [t] used transposed
  // (t = 1) or not (compute::PackedBf16Weight).
  struct Bf16Copies {
    std::vector<std::uint16_t> dense;
    std::uint64_t dense_version = 0;
    compute::PackedBf16Weight packed[2];
    std::uint64_t packed_version[2] = {0, 0};
  };
  Bf16Copies bf16_[2];  // [0] W_layer, [1] W_iter
};

}  // namespace gloss::nn
