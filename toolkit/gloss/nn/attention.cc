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
  // W for every step's s W, packed once (a step's GEMM has few rows: packed_gemm.h)
  if (compute::bf16_gemms())
    m.w16.pack(false, query_, att_, w_.value.data());
  else
    m.w32.pack(false, query_, att_, w_.value.data(), att_);
}

void AdditiveAttention::forward(Memory& m, const float* query, float* context, Step& step) const {
  const int S = m.S, N = m.source_of ? m.queries : m.N;
  const std::int64_t A = att_;
  // a = s W + b
  step.a.resize({N, A});
  float* a = step.a.data();
  for (int n = 0; n < N; ++n) std::memcpy(a + n * A, b_.value.data(), static_cast<std::size_t>(A) * sizeof(float));
  if (compute::bf16_gemms())
    m.w16.run(N, query, query_, 1.0f, a, A);
  else
    m.w32.run(N, query, query_, 1.0f, a, A);
  step.alpha.resize({S, N});
  const compute::StageTimer timer(compute::Stage::kAttention);
  kernels::attention_forward(S, N, A, key_, m.uh.data(), a, v_.value.data(), m.keys, m.lengths, step.alpha.data(),
                             context, m.source_of, m.N);
}

void AdditiveAttention::begin_backward(Memory& m) const {
  m.duh.resize({m.S, m.N, att_});
  m.duh.zero();
  m.dv_rows.resize({m.N, att_});
  m.dv_rows.zero();
  m.de.resize({m.S, m.N});
  // W^T for backward's per-step GEMM, packed once a batch (about one step's GEMM).
  if (compute::bf16_gemms())
    m.w16_t.pack(true, att_, query_, w_.value.data());
  else
    m.w32_t.pack(true, att_, query_, w_.value.data(), att_);
}

void AdditiveAttention::backward(Memory& m, const Step& step, const float* dcontext, float* da, float* dquery,
                                 float* dkeys) const {
  const int S = m.S, N = m.N;
  const std::int64_t A = att_;
  {
    const compute::StageTimer timer(compute::Stage::kAttention);
    kernels::attention_backward(S, N, A, key_, m.uh.data(), step.a.data(), v_.value.data(), m.keys, m.lengths,
                                step.alpha.data(), dcontext, m.de.data(), dkeys, m.duh.data(), da, m.dv_rows.data());
  }
  // a = s W + b: the query's gradient now; W's and b's once for all steps in finish_backward.
  if (compute::bf16_gemms())
    m.w16_t.run(N, da, A, 0.0f, dquery, query_);
  else
    m.w32_t.run(N, da, A, 0.0f, dquery, query_);
}

void AdditiveAttention::finish_backward(Memory& m, std::int64_t rows, const float* queries, const float* da,
                                        float* dkeys) const {
  const std::int64_t A = att_;
  compute::gemm(true, false, query_, A, rows, 1.0f, queries, query_, da, A, 1.0f, w_.grad.data(), A);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t k = 0; k < A; ++k) b_.grad[k] += da[r * A + k];
  for (int n = 0; n < m.N; ++n)
    for (std::int64_t k = 0; k < A; ++k) v_.grad[k] += m.dv_rows[n * A + k];
  const std::int64_t srows = static_cast<std::int64_t>(m.S) * m.N;
  compute::gemm(false, true, srows, key_, A, 1.0f, m.duh.data(), A, u_.value.data(), A, 1.0f, dkeys, key_);
  compute::gemm(true, false, key_, A, srows, 1.0f, m.keys, key_, m.duh.data(), A, 1.0f, u_.grad.data(), A);
}

}  // namespace gloss::nn
