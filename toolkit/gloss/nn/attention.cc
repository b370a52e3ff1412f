#include "gloss/nn/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"

namespace gloss::nn {

AdditiveAttention::AdditiveAttention(ParameterSet& params, const std::string& name, std::int64_t query_dim,
                                     std::int64_t key_dim, std::int64_t att_dim)
    : query_(query_dim),
      key_(key_dim),
      att_(att_dim),
      w_(params.add(name + "/W", {query_dim, att_dim})),
      b_(params.add(name + "/b", {att_dim})),
      u_(params.add(name + "/U", {key_dim, att_dim})),
      v_(params.add(name + "/v", {att_dim})) {}

void AdditiveAttention::prepare(Memory& m) const {
  const std::int64_t rows = static_cast<std::int64_t>(m.S) * m.N;
  m.uh.resize({m.S, m.N, att_});
  compute::gemm(false, false, rows, att_, key_, 1.0f, m.keys, key_, u_.value.data(), att_, 0.0f, m.uh.data(), att_);
  m.duh.resize({m.S, m.N, att_});
  m.duh.zero();
}

void AdditiveAttention::forward(Memory& m, const float* query, float* context, Step& step) const {
  const int S = m.S, N = m.N;
  const std::int64_t A = att_, K = key_;
  // a = s W + b
  step.a.resize({N, A});
  float* a = step.a.data();
  for (int n = 0; n < N; ++n) std::memcpy(a + n * A, b_.value.data(), static_cast<std::size_t>(A) * sizeof(float));
  compute::gemm(false, false, N, A, query_, 1.0f, query, query_, w_.value.data(), A, 1.0f, a, A);
  m.scratch.resize({S, N, A});
  step.alpha.resize({S, N});
  float* alpha = step.alpha.data();
  kernels::attention_scores(S, N, A, m.uh.data(), a, v_.value.data(), m.lengths, m.scratch.data(), alpha);
  // Softmax over source positions, per sentence.
  for (int n = 0; n < N; ++n) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < m.lengths[n]; ++j) mx = std::max(mx, alpha[j * N + n]);
    double sum = 0.0;
    for (int j = 0; j < m.lengths[n]; ++j) {
      alpha[j * N + n] = std::exp(alpha[j * N + n] - mx);
      sum += alpha[j * N + n];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int j = 0; j < S; ++j) alpha[j * N + n] = j < m.lengths[n] ? alpha[j * N + n] * inv : 0.0f;
  }
  // c = sum_j alpha_j h_j
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    float* c = context + n * K;
    std::memset(c, 0, static_cast<std::size_t>(K) * sizeof(float));
    for (int j = 0; j < m.lengths[n]; ++j) {
      const float w = alpha[j * N + n];
      const float* h = m.keys + (static_cast<std::int64_t>(j) * N + n) * K;
#pragma omp simd
      for (std::int64_t k = 0; k < K; ++k) c[k] += w * h[k];
    }
  }
}

void AdditiveAttention::backward(Memory& m, const float* query, const Step& step, const float* dcontext,
                                 float* dquery, float* dkeys) const {
  const int S = m.S, N = m.N;
  const std::int64_t A = att_, K = key_;
  const float* alpha = step.alpha.data();
  std::vector<float> dalpha(static_cast<std::size_t>(S) * N, 0.0f);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* dc = dcontext + n * K;
    for (int j = 0; j < m.lengths[n]; ++j) {
      const float* h = m.keys + (static_cast<std::int64_t>(j) * N + n) * K;
      float* dh = dkeys + (static_cast<std::int64_t>(j) * N + n) * K;
      const float w = alpha[j * N + n];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (std::int64_t k = 0; k < K; ++k) {
        dot += dc[k] * h[k];
        dh[k] += w * dc[k];
      }
      dalpha[static_cast<std::size_t>(j * N + n)] = dot;
    }
  }
  // Softmax backward: de_j = alpha_j (dalpha_j - sum_j' alpha_j' dalpha_j').
  std::vector<float> de(static_cast<std::size_t>(S) * N, 0.0f);
  for (int n = 0; n < N; ++n) {
    double s = 0.0;
    for (int j = 0; j < m.lengths[n]; ++j) s += static_cast<double>(alpha[j * N + n]) * dalpha[static_cast<std::size_t>(j * N + n)];
    for (int j = 0; j < m.lengths[n]; ++j)
      de[static_cast<std::size_t>(j * N + n)] = alpha[j * N + n] * (dalpha[static_cast<std::size_t>(j * N + n)] - static_cast<float>(s));
  }
  // Through v^T tanh(.): dv += sum de * pre; dz = de * v * (1 - pre^2); duh += dz; da = sum_j dz.
  std::vector<float> da(static_cast<std::size_t>(N * A), 0.0f);
  m.scratch.resize({S, N, A});
  std::vector<float> unused(static_cast<std::size_t>(S) * N);
  kernels::attention_scores(S, N, A, m.uh.data(), step.a.data(), v_.value.data(), m.lengths, m.scratch.data(),
                            unused.data());
  kernels::attention_scores_backward(S, N, A, m.scratch.data(), v_.value.data(), de.data(), m.lengths, m.duh.data(),
                                     da.data(), v_.grad.data());
  // a = s W + b
  compute::gemm(true, false, query_, A, N, 1.0f, query, query_, da.data(), A, 1.0f, w_.grad.data(), A);
  for (int n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < A; ++k) b_.grad[k] += da[static_cast<std::size_t>(n * A + k)];
  compute::gemm(false, true, N, query_, A, 1.0f, da.data(), A, w_.value.data(), A, 0.0f, dquery, query_);
}

void AdditiveAttention::finish_backward(Memory& m, float* dkeys) const {
  const std::int64_t rows = static_cast<std::int64_t>(m.S) * m.N;
  compute::gemm(false, true, rows, key_, att_, 1.0f, m.duh.data(), att_, u_.value.data(), att_, 1.0f, dkeys, key_);
  compute::gemm(true, false, key_, att_, rows, 1.0f, m.keys, key_, m.duh.data(), att_, 1.0f, u_.grad.data(), att_);
}

}  // namespace gloss::nn
