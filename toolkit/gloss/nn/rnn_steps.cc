#include "gloss/nn/rnn_steps.h"

#include <stdexcept>
#include <vector>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"

namespace gloss::nn {
namespace {

// n logistic sigmoids in place, as 0.5 (1 + tanh(x / 2)) with the vectorised tanh.
void sigmoid_inplace(std::int64_t n, float* x) {
  for (std::int64_t k = 0; k < n; ++k) x[k] *= 0.5f;
  kernels::tanh_inplace(n, x);
  for (std::int64_t k = 0; k < n; ++k) x[k] = 0.5f * (1.0f + x[k]);
}

// into[g] += the sum over rows of m[row, g], rows in order (m [rows, width]).
void add_column_sums(std::int64_t rows, std::int64_t width, const float* m, float* into) {
  std::vector<float> sum(static_cast<std::size_t>(width), 0.0f);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t g = 0; g < width; ++g) sum[static_cast<std::size_t>(g)] += m[r * width + g];
  for (std::int64_t g = 0; g < width; ++g) into[g] += sum[static_cast<std::size_t>(g)];
}

}  // namespace

std::int64_t RnnSteps::gate_width() const { return (cell_->cell() == CellType::kGru ? 4 : 5) * cell_->hidden_size(); }

void RnnSteps::weight_gemm(bool iter, bool trans, std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                           float beta, float* c) {
  Parameter& w = iter ? cell_->weights_iter() : cell_->weights_layer();
  const std::int64_t GH = cell_->gates() * cell_->hidden_size();
  if (!compute::bf16_gemms()) {
    compute::gemm(false, trans, m, n, k, 1.0f, a, k, w.value.data(), GH, beta, c, n);
    return;
  }
  if (bf16_version_ != cell_->weights_version()) {
    for (auto* p : {&cell_->weights_layer(), &cell_->weights_iter()}) {
      auto& copy = p == &cell_->weights_layer() ? w_layer16_ : w_iter16_;
      copy.resize(static_cast<std::size_t>(p->value.size()));
      compute::to_bf16(p->value.size(), p->value.data(), copy.data());
    }
    bf16_version_ = cell_->weights_version();
  }
  compute::gemm_bf16_b(false, trans, m, n, k, 1.0f, a, k, (iter ? w_iter16_ : w_layer16_).data(), beta, c, n);
}

void RnnSteps::begin(int T, int N, const float* x, const float* h, const float* c) {
  if (cell_->cell() == CellType::kLstm && !c) throw std::logic_error("RnnSteps::begin: an LSTM needs its cell states");
  T_ = T;
  N_ = N;
  x_ = x;
  h_ = h;
  c_ = c;
  const std::int64_t GH = cell_->gates() * cell_->hidden_size();
  gates_.resize({T, N, gate_width()});
  dgates_.resize({T, N, GH});
  gx_.resize({N, GH});
  gh_.resize({N, GH});
}

void RnnSteps::forward(int i, float* h_out, float* c_out) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t N = N_, C = cell_->input_size(), H = cell_->hidden_size(), GH = cell_->gates() * H;
  weight_gemm(false, false, N, GH, C, x_ + i * N * C, 0.0f, gx_.data());
  weight_gemm(true, false, N, GH, H, h_ + i * N * H, 0.0f, gh_.data());
  if (cell_->cell() == CellType::kGru)
    gru_forward(i, gx_.data(), gh_.data(), h_out);
  else
    lstm_forward(i, gx_.data(), gh_.data(), h_out, c_out);
}

// u = sig(.), r = sig(.), o = tanh(W_o x + b_o + r (U_o h + b_u')), h' = u h + (1 - u) o.
void RnnSteps::gru_forward(int i, const float* gx, const float* gh, float* h_out) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  const float* b = cell_->bias().value.data();
  for (std::int64_t n = 0; n < N; ++n) {
    float* g = gates_.data() + (i * N + n) * W;  // u, r, o, U_o h + b_u'
    const float* x = gx + n * 3 * H;
    const float* s = gh + n * 3 * H;
    for (std::int64_t k = 0; k < 2 * H; ++k) g[k] = x[k] + s[k] + b[k];
    sigmoid_inplace(2 * H, g);
    const float* r = g + H;
    for (std::int64_t k = 0; k < H; ++k) {
      g[3 * H + k] = s[2 * H + k] + b[3 * H + k];
      g[2 * H + k] = x[2 * H + k] + b[2 * H + k] + r[k] * g[3 * H + k];
    }
    kernels::tanh_inplace(H, g + 2 * H);
    const float* hp = h_ + (i * N + n) * H;
    float* out = h_out + n * H;
    for (std::int64_t k = 0; k < H; ++k) out[k] = g[k] * hp[k] + (1.0f - g[k]) * g[2 * H + k];
  }
}

// i, f, o = sig(.), c~ = tanh(.), c' = f c + i c~, h' = o tanh(c').
void RnnSteps::lstm_forward(int i, const float* gx, const float* gh, float* h_out, float* c_out) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  const float* b = cell_->bias().value.data();
  for (std::int64_t n = 0; n < N; ++n) {
    float* g = gates_.data() + (i * N + n) * W;  // i, f, c~, o, tanh(c')
    for (std::int64_t k = 0; k < 4 * H; ++k) g[k] = gx[n * 4 * H + k] + gh[n * 4 * H + k] + b[k];
    sigmoid_inplace(2 * H, g);
    kernels::tanh_inplace(H, g + 2 * H);
    sigmoid_inplace(H, g + 3 * H);
    const float* cp = c_ + (i * N + n) * H;
    float* cn = c_out + n * H;
    for (std::int64_t k = 0; k < H; ++k) cn[k] = g[H + k] * cp[k] + g[k] * g[2 * H + k];
    std::copy(cn, cn + H, g + 4 * H);
    kernels::tanh_inplace(H, g + 4 * H);
    float* out = h_out + n * H;
    for (std::int64_t k = 0; k < H; ++k) out[k] = g[3 * H + k] * g[4 * H + k];
  }
}

void RnnSteps::backward(int i, const float* dh, const float* dc, float* dx, float* dh_prev, float* dc_prev) {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t N = N_, C = cell_->input_size(), H = cell_->hidden_size(), GH = cell_->gates() * H;
  const float* dg = dgates_.data() + i * N * GH;
  if (cell_->cell() == CellType::kGru) {
    gru_backward(i, dh, dh_prev);
  } else {
    lstm_backward(i, dh, dc, dc_prev);
  }
  weight_gemm(false, true, N, C, GH, dg, 0.0f, dx);
  // The GRU's recurrent gate gradients differ from dg in o (gh_ holds them); the LSTM's are dg.
  const float* dgh = cell_->cell() == CellType::kGru ? gh_.data() : dg;
  weight_gemm(true, true, N, H, GH, dgh, cell_->cell() == CellType::kGru ? 1.0f : 0.0f, dh_prev);
}

void RnnSteps::gru_backward(int i, const float* dh, float* dh_prev) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  for (std::int64_t n = 0; n < N; ++n) {
    const float* g = gates_.data() + (i * N + n) * W;
    const float *u = g, *r = g + H, *o = g + 2 * H, *hpart = g + 3 * H;
    const float* hp = h_ + (i * N + n) * H;
    const float* d = dh + n * H;
    float* dg = dgates_.data() + (i * N + n) * 3 * H;
    float* dgh = gh_.data() + n * 3 * H;
    float* dprev = dh_prev + n * H;
    for (std::int64_t k = 0; k < H; ++k) {
      const float du = d[k] * (hp[k] - o[k]) * u[k] * (1.0f - u[k]);
      const float dop = d[k] * (1.0f - u[k]) * (1.0f - o[k] * o[k]);
      const float dr = dop * hpart[k] * r[k] * (1.0f - r[k]);
      dg[k] = dgh[k] = du;
      dg[H + k] = dgh[H + k] = dr;
      dg[2 * H + k] = dop;
      dgh[2 * H + k] = dop * r[k];
      dprev[k] = d[k] * u[k];
    }
  }
}

void RnnSteps::lstm_backward(int i, const float* dh, const float* dc, float* dc_prev) {
  const std::int64_t N = N_, H = cell_->hidden_size(), W = gate_width();
  for (std::int64_t n = 0; n < N; ++n) {
    const float* g = gates_.data() + (i * N + n) * W;
    const float *gi = g, *gf = g + H, *gc = g + 2 * H, *go = g + 3 * H, *tc = g + 4 * H;
    const float* cp = c_ + (i * N + n) * H;
    const float* d = dh + n * H;
    float* dg = dgates_.data() + (i * N + n) * 4 * H;
    float* dcp = dc_prev + n * H;
    for (std::int64_t k = 0; k < H; ++k) {
      const float dct = (dc ? dc[n * H + k] : 0.0f) + d[k] * go[k] * (1.0f - tc[k] * tc[k]);
      dg[k] = dct * gc[k] * gi[k] * (1.0f - gi[k]);
      dg[H + k] = dct * cp[k] * gf[k] * (1.0f - gf[k]);
      dg[2 * H + k] = dct * gi[k] * (1.0f - gc[k] * gc[k]);
      dg[3 * H + k] = d[k] * tc[k] * go[k] * (1.0f - go[k]);
      dcp[k] = dct * gf[k];
    }
  }
}

void RnnSteps::finish_backward() {
  const compute::StageTimer timer(compute::Stage::kRnn);
  const std::int64_t M = static_cast<std::int64_t>(T_) * N_, C = cell_->input_size(), H = cell_->hidden_size(),
                     GH = cell_->gates() * H;
  float* dg = dgates_.data();
  compute::gemm(true, false, C, GH, M, 1.0f, x_, C, dg, GH, 1.0f, cell_->weights_layer().grad.data(), GH);
  float* db = cell_->bias().grad.data();
  add_column_sums(M, GH, dg, db);         // u, r, o (GRU); i, f, c~, o (LSTM)
  if (cell_->cell() == CellType::kGru) {  // U_o's gate gradient and b_u''s: o's times r
    const std::int64_t W = gate_width();
    for (std::int64_t row = 0; row < M; ++row) {
      const float* r = gates_.data() + row * W + H;
      float* o = dg + row * GH + 2 * H;
      for (std::int64_t k = 0; k < H; ++k) o[k] *= r[k];
    }
    std::vector<float> du(static_cast<std::size_t>(H), 0.0f);
    for (std::int64_t row = 0; row < M; ++row)
      for (std::int64_t k = 0; k < H; ++k) du[static_cast<std::size_t>(k)] += dg[row * GH + 2 * H + k];
    for (std::int64_t k = 0; k < H; ++k) db[3 * H + k] += du[static_cast<std::size_t>(k)];
  }
  compute::gemm(true, false, H, GH, M, 1.0f, h_, H, dg, GH, 1.0f, cell_->weights_iter().grad.data(), GH);
}

}  // namespace gloss::nn
