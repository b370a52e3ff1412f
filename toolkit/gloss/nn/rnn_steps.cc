#include "gloss/nn/rnn_steps.h"

#include <stdexcept>
#include <utility>
#include <vector>

#include "gloss/tensor/clones.h"
#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"

namespace gloss::nn {
namespace {

// The cells' element-wise work, one row of H units at a time, as GLOSS_CLONES functions (AVX-512
// where the CPU has it, instead of the baseline's SSE2). This file is compiled with
// -ffp-contract=off (toolkit/CMakeLists.txt): no clone fuses a multiply and an add, so every
// clone computes the baseline's values bit for bit. `omp simd` vectorises loops whose input
// may be the very array they write (x may be g below): each value is read before it is written.

// n logistic sigmoids in place, as 0.5 (1 + tanh(x / 2)) with the vectorised tanh.
GLOSS_CLONES void sigmoid_inplace(std::int64_t n, float* x) {
#pragma omp simd
  for (std::int64_t k = 0; k < n; ++k) x[k] *= 0.5f;
  kernels::tanh_inplace(n, x);
#pragma omp simd
  for (std::int64_t k = 0; k < n; ++k) x[k] = 0.5f * (1.0f + x[k]);
}

// GRU forward of one row (rnn_steps.h): x = x W_layer (may be g), s = h W_iter, b the bias,
// hp the state before; writes the gates g (u, r, o, U_o h + b_u') and the new state out.
GLOSS_CLONES void gru_row_forward(std::int64_t H, const float* x, const float* s, const float* b, const float* hp,
                                  float* g, float* out) {
#pragma omp simd
  for (std::int64_t k = 0; k < 2 * H; ++k) g[k] = x[k] + s[k] + b[k];
  sigmoid_inplace(2 * H, g);
  const float* r = g + H;
#pragma omp simd
  for (std::int64_t k = 0; k < H; ++k) {
    g[3 * H + k] = s[2 * H + k] + b[3 * H + k];
    g[2 * H + k] = x[2 * H + k] + b[2 * H + k] + r[k] * g[3 * H + k];
  }
  kernels::tanh_inplace(H, g + 2 * H);
#pragma omp simd
  for (std::int64_t k = 0; k < H; ++k) out[k] = g[k] * hp[k] + (1.0f - g[k]) * g[2 * H + k];
}

// GRU backward of one row: g's gates become du, dr, do, do r; dgh gets the recurrent ones (du,
// dr, do r) and dprev the element-wise part of dh_prev, u dh (dprev may be d).
GLOSS_CLONES void gru_row_backward(std::int64_t H, const float* d, const float* hp, float* g, float* dgh,
                                   float* dprev) {
#pragma omp simd
  for (std::int64_t k = 0; k < H; ++k) {
    const float u = g[k], r = g[H + k], o = g[2 * H + k], hpart = g[3 * H + k];
    const float du = d[k] * (hp[k] - o) * u * (1.0f - u);
    const float dop = d[k] * (1.0f - u) * (1.0f - o * o);
    const float dr = dop * hpart * r * (1.0f - r);
    g[k] = dgh[k] = du;
    g[H + k] = dgh[H + k] = dr;
    g[2 * H + k] = dop;
    g[3 * H + k] = dgh[2 * H + k] = dop * r;
    dprev[k] = d[k] * u;
  }
}

// LSTM forward of one row: gx = x W_layer (may be g), gh = h W_iter, cp the cell state before;
// writes the gates g (i, f, c~, o, tanh(c')), the new cell state cn and state out.
GLOSS_CLONES void lstm_row_forward(std::int64_t H, const float* gx, const float* gh, const float* b, const float* cp,
                                   float* g, float* cn, float* out) {
#pragma omp simd
  for (std::int64_t k = 0; k < 4 * H; ++k) g[k] = gx[k] + gh[k] + b[k];
  sigmoid_inplace(2 * H, g);
  kernels::tanh_inplace(H, g + 2 * H);
  sigmoid_inplace(H, g + 3 * H);
#pragma omp simd
  for (std::int64_t k = 0; k < H; ++k) cn[k] = g[H + k] * cp[k] + g[k] * g[2 * H + k];
  std::copy(cn, cn + H, g + 4 * H);
  kernels::tanh_inplace(H, g + 4 * H);
#pragma omp simd
  for (std::int64_t k = 0; k < H; ++k) out[k] = g[3 * H + k] * g[4 * H + k];
}

// LSTM backward of one row: g's gates become di, df, dc~, do; dcp gets dc_prev. dc: the
// gradient of the new cell state (nullptr: zero).
GLOSS_CLONES void lstm_row_backward(std::int64_t H, const float* d, const float* dc, const float* cp, float* g,
                                    float* dcp) {
#pragma omp simd
  for (std::int64_t k = 0; k < H; ++k) {
    const float gi = g[k], gf = g[H + k], gc = g[2 * H + k], go = g[3 * H + k], tc = g[4 * H + k];
    const float dct = (dc ? dc[k] : 0.0f) + d[k] * go * (1.0f - tc * tc);
    g[k] = dct * gc * gi * (1.0f - gi);
    g[H + k] = dct * cp[k] * gf * (1.0f - gf);
    g[2 * H + k] = dct * gi * (1.0f - gc * gc);
    g[3 * H + k] = d[k] * tc * go * (1.0f - go);
    dcp[k] = dct * gf;
  }
}

}  // namespace

std::int64_t RnnSteps::gate_width() const { return (cell_->cell() == CellType::kGru ? 4 : 5) * cell_->hidden_size(); }

void RnnSteps::weight_gemm(bool iter, bool trans, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                           std::int64_t lda, float beta, float* c, std::int64_t ldc, std::int64_t first) {
  Parameter& w = iter ? cell_->weights_iter() : cell_->weights_layer();
  const std::int64_t GH = cell_->gates() * cell_->hidden_size(), rows = w.value.size() / GH;
  if (!compute::bf16_gemms()) {
    if (m == N_ && first + (trans ? n : k) == rows)  // one step's rows, W's rows from `first` to the end
      packed(iter, trans, first).run(m, a, lda, beta, c, ldc);
    else  // all steps' rows (or the known columns' rows of a 1-step sequence)
      compute::gemm(false, trans, m, n, k, 1.0f, a, lda, w.value.data() + first * GH, GH, beta, c, ldc);
    return;
  }
  if (first != 0) throw std::logic_error("RnnSteps: part of the weights in bf16");
  const std::uint64_t version = cell_->weights_version();
  Bf16Copies& copies = bf16_[iter ? 1 : 0];
  if (m == N_) {  // one step's rows: the packed copy, reordered once per update and row count
    const auto t = static_cast<std::size_t>(trans);
    if (copies.packed_version[t] != version) {
      copies.packed[t].pack(trans, k, n, w.value.data());
      copies.packed_version[t] = version;
    }
    copies.packed[t].run(m, a, lda, beta, c, ldc);
    return;
  }
  if (copies.dense_version != version) {  // all steps' rows (sequence mode): dense, packed by each call
    copies.dense.resize(static_cast<std::size_t>(w.value.size()));
    compute::to_bf16(w.value.size(), w.value.data(), copies.dense.data());
    copies.dense_version = version;
  }
  compute::gemm_bf16_b(false, trans, m, n, k, 1.0f, a, lda, copies.dense.data(), beta, c, ldc);
}

const compute::PackedF32Weight& RnnSteps::packed(bool iter, bool trans, std::int64_t first) {
  const Parameter& w = iter ? cell_->weights_iter() : cell_->weights_layer();
  const std::int64_t GH = cell_->gates() * cell_->hidden_size(), rows = w.value.size() / GH - first;
  const float* from = w.value.data() + first * GH;  // W's rows [first, end): [rows, G H]
  compute::PackedCopy& copy = packed_[iter ? 1 : 0][trans ? 1 : 0];
  return trans ? copy.get(true, GH, rows, from, GH, cell_->weights_version())
               : copy.get(false, rows, GH, from, GH, cell_->weights_version());
}

void RnnSteps::begin(int T, int N, const float* x, float* h, float* c, const float* known_x, std::int64_t known) {
  if (cell_->cell() == CellType::kLstm && !c) throw std::logic_error("RnnSteps::begin: an LSTM needs its cell states");
  if (known < 0 || known > cell_->input_size() || (known > 0 && !known_x))
    throw std::logic_error("RnnSteps::begin: known columns outside the input");
  T_ = T;
  N_ = N;
  x_ = x;
  known_x_ = known_x;
  known_ = compute::bf16_gemms() ? 0 : known;
  h_ = h;
  c_ = c;
  const std::int64_t GH = cell_->gates() * cell_->hidden_size();
  gates_.resize({T, N, gate_width()});
  gx_.resize({N, GH});
  gh_.resize({N, GH});
}

void RnnSteps::forward(int i, float* h_out, float* c_out) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t N = N_, C = cell_->input_size(), H = cell_->hidden_size(), GH = cell_->gates() * H,
                     W = gate_width(), Kn = known_;
  // x W into gx_, or with known columns into the step's gates: all steps' known part at step 0
  float* gx = Kn > 0 ? gates_.data() + i * N * W : gx_.data();
  const std::int64_t ldx = Kn > 0 ? W : GH;
  if (Kn > 0 && i == 0) weight_gemm(false, false, T_ * N, GH, Kn, known_x_, Kn, 0.0f, gates_.data(), W);
  if (C > Kn) weight_gemm(false, false, N, GH, C - Kn, x_ + i * N * C + Kn, C, Kn > 0 ? 1.0f : 0.0f, gx, ldx, Kn);
  weight_gemm(true, false, N, GH, H, h_ + i * N * H, H, 0.0f, gh_.data(), GH);
  if (cell_->cell() == CellType::kGru)
    gru_forward(i, gx, ldx, h_out);
  else
    lstm_forward(i, gx, ldx, h_out, c_out);
}

void RnnSteps::forward_sequence() {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t N = N_, C = cell_->input_size(), H = cell_->hidden_size(), GH = cell_->gates() * H,
                     W = gate_width();
  weight_gemm(false, false, T_ * N, GH, C, x_, C, 0.0f, gates_.data(), W);  // x W of every step, into the gates
  for (int i = 0; i < T_; ++i) {
    weight_gemm(true, false, N, GH, H, h_ + i * N * H, H, 0.0f, gh_.data(), GH);
    float* g = gates_.data() + i * N * W;
    if (cell_->cell() == CellType::kGru)
      gru_forward(i, g, W, h_ + (i + 1) * N * H);
    else
      lstm_forward(i, g, W, h_ + (i + 1) * N * H, c_ + (i + 1) * N * H);
  }
}

// u = sig(.), r = sig(.), o = tanh(W_o x + b_o + r (U_o h + b_u')), h' = u h + (1 - u) o.
void RnnSteps::gru_forward(int i, const float* gx, std::int64_t ldx, float* h_out) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  const float* b = cell_->bias().value.data();
  for (std::int64_t n = 0; n < N; ++n)
    gru_row_forward(H, gx + n * ldx, gh_.data() + n * 3 * H, b, h_ + (i * N + n) * H, gates_.data() + (i * N + n) * W,
                    h_out + n * H);
}

// i, f, o = sig(.), c~ = tanh(.), c' = f c + i c~, h' = o tanh(c').
void RnnSteps::lstm_forward(int i, const float* gx, std::int64_t ldx, float* h_out, float* c_out) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  const float* b = cell_->bias().value.data();
  for (std::int64_t n = 0; n < N; ++n)
    lstm_row_forward(H, gx + n * ldx, gh_.data() + n * 4 * H, b, c_ + (i * N + n) * H, gates_.data() + (i * N + n) * W,
                     c_out + n * H, h_out + n * H);
}

void RnnSteps::backward(int i, const float* dh, const float* dc, float* dx, float* dh_prev, float* dc_prev) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t N = N_, C = cell_->input_size(), GH = cell_->gates() * cell_->hidden_size(), W = gate_width();
  backward_state(i, dh, dc, dh_prev, dc_prev);
  weight_gemm(false, true, N, C - known_, GH, gates_.data() + i * N * W, W, 0.0f, dx + known_, C, known_);
}

// dh_prev may be dh and dc_prev dc: the element-wise parts read each element before writing it,
// and the GEMM runs after them.
void RnnSteps::backward_state(int i, const float* dh, const float* dc, float* dh_prev, float* dc_prev) {
  const std::int64_t N = N_, H = cell_->hidden_size(), GH = cell_->gates() * H, W = gate_width();
  if (cell_->cell() == CellType::kGru) {
    gru_backward(i, dh, dh_prev);  // the recurrent gates' gradients differ in o: gh_ holds them
    weight_gemm(true, true, N, H, GH, gh_.data(), GH, 1.0f, dh_prev, H);
  } else {
    lstm_backward(i, dh, dc, dc_prev);
    weight_gemm(true, true, N, H, GH, gates_.data() + i * N * W, W, 0.0f, dh_prev, H);
  }
}

void RnnSteps::backward_sequence(const float* dy, float* dx) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t N = N_, C = cell_->input_size(), H = cell_->hidden_size(), GH = cell_->gates() * H,
                     W = gate_width();
  const bool lstm = cell_->cell() == CellType::kLstm;
  carry_h_.resize({N, H});
  carry_h_.zero();
  if (lstm) {
    carry_c_.resize({N, H});
    carry_c_.zero();
  }
  float* dh = carry_h_.data();
  float* dc = lstm ? carry_c_.data() : nullptr;
  for (int i = T_ - 1; i >= 0; --i) {  // dh: the gradient step i + 1 sent back, plus dy's
    const float* d = dy + i * N * H;
    for (std::int64_t k = 0; k < N * H; ++k) dh[k] += d[k];
    backward_state(i, dh, dc, dh, dc);
  }
  weight_gemm(false, true, T_ * N, C, GH, gates_.data(), W, 0.0f, dx, C);  // dx of every step at once
  finish_backward();
}

void RnnSteps::gru_backward(int i, const float* dh, float* dh_prev) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  for (std::int64_t n = 0; n < N; ++n)  // gh_'s forward values are no longer needed: it takes the recurrent ones
    gru_row_backward(H, dh + n * H, h_ + (i * N + n) * H, gates_.data() + (i * N + n) * W, gh_.data() + n * 3 * H,
                     dh_prev + n * H);
}

void RnnSteps::lstm_backward(int i, const float* dh, const float* dc, float* dc_prev) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  for (std::int64_t n = 0; n < N; ++n)
    lstm_row_backward(H, dh + n * H, dc ? dc + n * H : nullptr, c_ + (i * N + n) * H, gates_.data() + (i * N + n) * W,
                      dc_prev + n * H);
}

void RnnSteps::finish_backward(float* dknown) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t M = static_cast<std::int64_t>(T_) * N_, C = cell_->input_size(), H = cell_->hidden_size(),
                     GH = cell_->gates() * H, W = gate_width();
  const float* dg = gates_.data();  // each row: GRU du, dr, do, do r; LSTM di, df, dc~, do (then unused)
  if (known_ > 0 && dknown) weight_gemm(false, true, M, known_, GH, dg, W, 1.0f, dknown, known_);
  float* dw = cell_->weights_layer().grad.data();
  float* du = cell_->weights_iter().grad.data();
  compute::gemm(true, false, C, GH, M, 1.0f, x_, C, dg, W, 1.0f, dw, GH);
  kernels::add_column_sums(M, 4 * H, dg, W, cell_->bias().grad.data());  // GRU: b_u' gets do r
  if (cell_->cell() == CellType::kLstm) {
    compute::gemm(true, false, H, GH, M, 1.0f, h_, H, dg, W, 1.0f, du, GH);
    return;
  }
  // U's gate gradients: u and r as W's, o's times r (the row's last H)
  compute::gemm(true, false, H, 2 * H, M, 1.0f, h_, H, dg, W, 1.0f, du, GH);
  compute::gemm(true, false, H, H, M, 1.0f, h_, H, dg + 3 * H, W, 1.0f, du + 2 * H, GH);
}

}  // namespace gloss::nn
