#include "gloss/nn/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/error.h"

namespace gloss::nn {

Linear::Linear(ParameterSet& params, const std::string& name, std::int64_t in, std::int64_t out, bool bias)
    : params_(&params), in_(in), out_(out), w_(&params.add(name + "/weight", {in, out})) {
  if (bias) b_ = &params.add(name + "/bias", {out});
}

const std::uint16_t* Linear::bf16_weight() const {
  if (w_bf16_version_ != params_->version()) {
    w_bf16_.resize(static_cast<std::size_t>(w_->value.size()));
    compute::to_bf16(w_->value.size(), w_->value.data(), w_bf16_.data());
    w_bf16_version_ = params_->version();
  }
  return w_bf16_.data();
}

void Linear::gemm_w(bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda,
                    std::int64_t row, float beta, float* c, std::int64_t ldc) const {
  if (compute::bf16_gemms())
    compute::gemm_bf16_b(false, trans_b, m, n, k, 1.0f, a, lda, bf16_weight() + row * out_, beta, c, ldc);
  else
    compute::gemm(false, trans_b, m, n, k, 1.0f, a, lda, w_->value.data() + row * out_, out_, beta, c, ldc);
}

void Linear::forward(std::int64_t m, const float* x, float* y) const {
  if (b_) {
    for (std::int64_t i = 0; i < m; ++i)
      std::memcpy(y + i * out_, b_->value.data(), static_cast<std::size_t>(out_) * sizeof(float));
  }
  gemm_w(false, m, out_, in_, x, in_, 0, b_ ? 1.0f : 0.0f, y, out_);
}

void Linear::backward(std::int64_t m, const float* x, const float* dy, float* dx, bool accumulate) const {
  compute::gemm(true, false, in_, out_, m, 1.0f, x, in_, dy, out_, 1.0f, w_->grad.data(), out_);
  if (b_) kernels::add_column_sums(m, out_, dy, out_, b_->grad.data());
  if (dx) gemm_w(true, m, in_, out_, dy, out_, 0, accumulate ? 1.0f : 0.0f, dx, in_);
}

void Linear::forward_parts(std::int64_t m, const std::vector<Part>& parts, float* y) const {
  if (b_) {
    for (std::int64_t i = 0; i < m; ++i)
      std::memcpy(y + i * out_, b_->value.data(), static_cast<std::size_t>(out_) * sizeof(float));
  }
  std::int64_t row = 0;
  for (std::size_t p = 0; p < parts.size(); ++p) {
    const bool first_write = p == 0 && !b_;
    gemm_w(false, m, out_, parts[p].width, parts[p].x, parts[p].width, row, first_write ? 0.0f : 1.0f, y, out_);
    row += parts[p].width;
  }
}

void Linear::backward_parts(std::int64_t m, const std::vector<Part>& parts, const float* dy,
                            const std::vector<float*>& dxs) const {
  std::int64_t row = 0;
  for (std::size_t p = 0; p < parts.size(); ++p) {
    const std::int64_t w = parts[p].width;
    compute::gemm(true, false, w, out_, m, 1.0f, parts[p].x, w, dy, out_, 1.0f, w_->grad.data() + row * out_, out_);
    if (dxs[p]) gemm_w(true, m, w, out_, dy, out_, row, 0.0f, dxs[p], w);
    row += w;
  }
  if (b_) kernels::add_column_sums(m, out_, dy, out_, b_->grad.data());
}

Embedding::Embedding(ParameterSet& params, const std::string& name, std::int64_t vocab, std::int64_t dim, int pad_id,
                     bool sparse_grad)
    : vocab_(vocab), dim_(dim), pad_(pad_id), table_(&params.add(name + "/table", {vocab, dim})) {
  if (sparse_grad) table_->rows_touched.assign(static_cast<std::size_t>(vocab), 0);
}

void Embedding::forward(std::int64_t m, const std::int32_t* ids, float* out) const {
  const auto row_bytes = static_cast<std::size_t>(dim_) * sizeof(float);
  for (std::int64_t i = 0; i < m; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_)  // a model whose subword model has more pieces than its table
      throw UserError("subword id " + std::to_string(ids[i]) + " is outside the embedding table of " +
                      std::to_string(vocab_) + " rows (model and subword model disagree)");
    if (ids[i] == pad_)
      std::memset(out + i * dim_, 0, row_bytes);
    else
      std::memcpy(out + i * dim_, table_->value.data() + static_cast<std::int64_t>(ids[i]) * dim_, row_bytes);
  }
}

void Embedding::backward(std::int64_t m, const std::int32_t* ids, const float* dout) const {
  auto& touched = table_->rows_touched;
  for (std::int64_t i = 0; i < m; ++i) {
    if (ids[i] == pad_) continue;
    if (!touched.empty()) touched[static_cast<std::size_t>(ids[i])] = 1;
    float* g = table_->grad.data() + static_cast<std::int64_t>(ids[i]) * dim_;
    const float* d = dout + i * dim_;
#pragma omp simd
    for (std::int64_t k = 0; k < dim_; ++k) g[k] += d[k];
  }
}

LayerNorm::LayerNorm(ParameterSet& params, const std::string& name, std::int64_t dim)
    : dim_(dim), gain_(params.add(name + "/ln_gain", {dim}, 1.0f)), bias_(params.add(name + "/ln_bias", {dim})) {}

void LayerNorm::forward(std::int64_t m, const float* x, float* y, float* stats) const {
  const std::int64_t C = dim_;
  const float* g = gain_.value.data();
  const float* b = bias_.value.data();
  for (std::int64_t r = 0; r < m; ++r) {
    const float* xr = x + r * C;
    double sum = 0, sq = 0;
    for (std::int64_t k = 0; k < C; ++k) sum += xr[k];
    const double mean = sum / static_cast<double>(C);
    for (std::int64_t k = 0; k < C; ++k) sq += (xr[k] - mean) * (xr[k] - mean);
    const auto mu = static_cast<float>(mean);
    const auto rstd = static_cast<float>(1.0 / std::sqrt(sq / static_cast<double>(C) + 1e-5));
    if (stats) stats[2 * r] = mu, stats[2 * r + 1] = rstd;
    float* yr = y + r * C;
    for (std::int64_t k = 0; k < C; ++k) yr[k] = g[k] * (xr[k] - mu) * rstd + b[k];
  }
}

void LayerNorm::backward(std::int64_t m, const float* x, const float* stats, const float* dy, float* dx) const {
  const std::int64_t C = dim_;
  const float* g = gain_.value.data();
  float* dg = gain_.grad.data();
  float* db = bias_.grad.data();
  std::vector<float> xhat(static_cast<std::size_t>(C)), dxhat(static_cast<std::size_t>(C));
  for (std::int64_t r = 0; r < m; ++r) {
    const float mu = stats[2 * r], rstd = stats[2 * r + 1];
    const float* xr = x + r * C;
    const float* dyr = dy + r * C;
    double mean_d = 0, mean_dx = 0;
    for (std::int64_t k = 0; k < C; ++k) {
      const auto kk = static_cast<std::size_t>(k);
      xhat[kk] = (xr[k] - mu) * rstd;
      dxhat[kk] = dyr[k] * g[k];
      dg[k] += dyr[k] * xhat[kk];
      db[k] += dyr[k];
      mean_d += dxhat[kk];
      mean_dx += dxhat[kk] * xhat[kk];
    }
    mean_d /= static_cast<double>(C);
    mean_dx /= static_cast<double>(C);
    float* dxr = dx + r * C;  // may alias dyr: every dyr[k] was read above
    for (std::int64_t k = 0; k < C; ++k) {
      const auto kk = static_cast<std::size_t>(k);
      dxr[k] = rstd * static_cast<float>(dxhat[kk] - mean_d - xhat[kk] * mean_dx);
    }
  }
}

void dropout_forward(std::int64_t n, float p, Rng& rng, float* x, float* mask) {
  const float scale = 1.0f / (1.0f - p);
  const std::uint64_t threshold = static_cast<std::uint64_t>(static_cast<double>(p) * 18446744073709551616.0);
  for (std::int64_t i = 0; i < n; ++i) mask[i] = rng.next() < threshold ? 0.0f : scale;
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) x[i] *= mask[i];
}

void dropout_backward(std::int64_t n, const float* mask, float* dx) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) dx[i] *= mask[i];
}

void maxout_forward(std::int64_t m, std::int64_t units, const float* x, float* y, std::uint8_t* which) {
  for (std::int64_t i = 0; i < m * units; ++i) {
    const float a = x[2 * i], b = x[2 * i + 1];
    which[i] = b > a;
    y[i] = b > a ? b : a;
  }
}

void maxout_backward(std::int64_t m, std::int64_t units, const std::uint8_t* which, const float* dy, float* dx) {
  for (std::int64_t i = 0; i < m * units; ++i) {
    dx[2 * i] = which[i] ? 0.0f : dy[i];
    dx[2 * i + 1] = which[i] ? dy[i] : 0.0f;
  }
}

void tanh_forward(std::int64_t n, float* x) { kernels::tanh_inplace(n, x); }

void tanh_backward(std::int64_t n, const float* y, float* dy) {
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) dy[i] *= 1.0f - y[i] * y[i];
}

LossSum softmax_cross_entropy(std::int64_t m, std::int64_t v, float* logits, const std::int32_t* targets, int pad,
                              float label_smoothing, bool grad, float scale) {
  const compute::StageTimer timer(compute::Stage::kLoss);
  std::vector<double> row_loss(static_cast<std::size_t>(m)), row_nll(static_cast<std::size_t>(m));
  kernels::cross_entropy_rows(m, v, logits, targets, pad, label_smoothing, grad, scale, row_loss.data(),
                              row_nll.data());
  LossSum out;
  for (std::int64_t i = 0; i < m; ++i) {  // summed in row order: independent of the thread count
    if (targets[i] == pad) continue;
    out.loss += row_loss[static_cast<std::size_t>(i)];
    out.nll += row_nll[static_cast<std::size_t>(i)];
    ++out.tokens;
  }
  return out;
}

}  // namespace gloss::nn
