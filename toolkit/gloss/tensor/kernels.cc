#include "gloss/tensor/kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <omp.h>

#include "gloss/tensor/clones.h"

#define GLOSS_INLINE inline __attribute__((always_inline))

namespace gloss::kernels {
namespace {

// e^x: x = k ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^k through the exponent bits.
GLOSS_INLINE float exp_f(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  const float t = x * 1.44269504088896341f;
  const float k = (t + 12582912.0f) - 12582912.0f;  // round to nearest (|t| < 2^22)
  float r = x - k * 0.693145751953125f;
  r = r - k * 1.428606765330187e-06f;
  float p = 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(k) + 127) << 23;
  return p * std::bit_cast<float>(bits);
}

GLOSS_INLINE float tanh_f(float x) {
  const float ax = std::fabs(x);
  const float e = exp_f(-2.0f * ax);
  const float big = (1.0f - e) / (1.0f + e);
  const float x2 = ax * ax;  // series near 0, where 1 - e loses digits
  const float small = ax * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
  const float y = ax < 0.125f ? small : big;
  return std::copysign(y, x);
}

constexpr std::int64_t kChunk = 1 << 14;

// Whether a loop over `work` values gets a parallel region. Entering one costs a thread team
// even when it has one thread or an `if` clause that is false (measured: a few microseconds a
// call), which the training workers (one OpenMP thread each) paid at every row of every
// recurrent step: element-wise kernels take their serial path without entering one.
GLOSS_INLINE bool worth_threads(std::int64_t work) { return work > 4 * kChunk && omp_get_max_threads() > 1; }

// max(m, x) skipping NaN (x > m is false for NaN), as std::max(m, x) is: GCC 12 leaves an
// `omp simd reduction(max)` loop over std::max(m, x[i]) scalar (a vmaxss per entry) but makes
// this form vmaxps. The maximum is exact in any order.
GLOSS_INLINE float max_or_keep(float m, float x) { return x > m ? x : m; }

}  // namespace

namespace {
GLOSS_INLINE void tanh_range(std::int64_t begin, std::int64_t end, float* x) {
#pragma omp simd
  for (std::int64_t i = begin; i < end; ++i) x[i] = tanh_f(x[i]);
}
}  // namespace

GLOSS_CLONES void tanh_inplace(std::int64_t n, float* x) {
  if (!worth_threads(n)) return tanh_range(0, n, x);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < n; c += kChunk) tanh_range(c, std::min(n, c + kChunk), x);
}

GLOSS_CLONES double sum_squares(std::int64_t n, const float* x) {
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<std::size_t>(chunks), 0.0);
#pragma omp parallel for schedule(static) if (n > 4 * kChunk)
  for (std::int64_t c = 0; c < chunks; ++c) {
    const std::int64_t end = std::min(n, (c + 1) * kChunk);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (std::int64_t i = c * kChunk; i < end; ++i) s += x[i] * x[i];
    partial[static_cast<std::size_t>(c)] = s;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

namespace {
GLOSS_INLINE void move_add_range(std::int64_t begin, std::int64_t end, float* from, float* into) {
#pragma omp simd
  for (std::int64_t i = begin; i < end; ++i) {
    into[i] += from[i];
    from[i] = 0.0f;
  }
}
}  // namespace

GLOSS_CLONES void move_add(std::int64_t n, float* from, float* into) {
  if (!worth_threads(n)) return move_add_range(0, n, from, into);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < n; c += kChunk) move_add_range(c, std::min(n, c + kChunk), from, into);
}

GLOSS_CLONES void add_column_sums(std::int64_t rows, std::int64_t width, const float* m, std::int64_t ld, float* into) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = m + r * ld;
#pragma omp simd
    for (std::int64_t g = 0; g < width; ++g) into[g] += row[g];
  }
}

GLOSS_CLONES void transpose(std::int64_t rows, std::int64_t cols, const float* in, float* out) {
  constexpr std::int64_t kTile = 32;
#pragma omp parallel for schedule(static) if (rows * cols > 4 * kChunk)
  for (std::int64_t r0 = 0; r0 < rows; r0 += kTile)
    for (std::int64_t c0 = 0; c0 < cols; c0 += kTile) {
      const std::int64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
      for (std::int64_t c = c0; c < c1; ++c)
#pragma omp simd
        for (std::int64_t r = r0; r < r1; ++r) out[c * rows + r] = in[r * cols + c];
    }
}

namespace {

// The optimiser step's per-value work (kernels.h, StepFactors), with or without an average:
// one loop body, so that every array is read and written once.
template <bool kAdam, bool kAverage>
GLOSS_INLINE void step_values(std::int64_t n, const StepFactors& f, float* w, float* g, float* m, float* v,
                              float* avg) {
  const float lr = f.lr, grad_scale = f.grad_scale, shrink = f.shrink, d = f.avg_decay, c1 = f.c1, c2 = f.c2;
#pragma omp simd
  for (std::int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * grad_scale;
    g[i] = 0.0f;
    float wi = w[i] * shrink;
    if constexpr (kAdam) {
      const float mi = 0.9f * m[i] + 0.1f * gi;
      const float vi = 0.999f * v[i] + 0.001f * gi * gi;
      m[i] = mi;
      v[i] = vi;
      wi -= lr * (mi * c1) / (std::sqrt(vi * c2) + 1e-8f);
    } else {
      wi -= lr * gi;
    }
    w[i] = wi;
    if constexpr (kAverage) avg[i] = d * avg[i] + (1.0f - d) * wi;
  }
}

}  // namespace

GLOSS_CLONES void adam_step(std::int64_t n, const StepFactors& f, float* w, float* g, float* m, float* v, float* avg) {
  if (avg)
    step_values<true, true>(n, f, w, g, m, v, avg);
  else
    step_values<true, false>(n, f, w, g, m, v, nullptr);
}

GLOSS_CLONES void sgd_step(std::int64_t n, const StepFactors& f, float* w, float* g, float* avg) {
  if (avg)
    step_values<false, true>(n, f, w, g, nullptr, nullptr, avg);
  else
    step_values<false, false>(n, f, w, g, nullptr, nullptr, nullptr);
}

GLOSS_CLONES void attention_forward(int S, int N, std::int64_t A, std::int64_t K, const float* uh, const float* a,
                                    const float* v, const float* keys, const std::int32_t* lengths, float* alpha,
                                    float* context, const std::int32_t* source_of, int M) {
  if (!source_of) M = N;
    // One parallel region per step (not one per stage): the decoder runs this at every step.
#pragma omp parallel for schedule(static) if (static_cast <std::int64_t>(S) * N * A > 4 * kChunk)
  for (int n = 0; n < N; ++n) {
    const int len = lengths[n];
    const std::int64_t row = source_of ? source_of[n] : n;
    const float* an = a + static_cast<std::int64_t>(n) * A;
    float mx = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < len; ++j) {
      const float* u = uh + (static_cast<std::int64_t>(j) * M + row) * A;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (std::int64_t k = 0; k < A; ++k) s += tanh_f(u[k] + an[k]) * v[k];
      alpha[j * N + n] = s;
      mx = std::max(mx, s);
    }
    double sum = 0.0;
    for (int j = 0; j < len; ++j) {
      alpha[j * N + n] = std::exp(alpha[j * N + n] - mx);
      sum += alpha[j * N + n];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (int j = 0; j < S; ++j) alpha[j * N + n] = j < len ? alpha[j * N + n] * inv : 0.0f;
    float* c = context + static_cast<std::int64_t>(n) * K;
    std::memset(c, 0, static_cast<std::size_t>(K) * sizeof(float));
    for (int j = 0; j < len; ++j) {
      const float w = alpha[j * N + n];
      const float* h = keys + (static_cast<std::int64_t>(j) * M + row) * K;
#pragma omp simd
      for (std::int64_t k = 0; k < K; ++k) c[k] += w * h[k];
    }
  }
}

GLOSS_CLONES void attention_backward(int S, int N, std::int64_t A, std::int64_t K, const float* uh, const float* a,
                                     const float* v, const float* keys, const std::int32_t* lengths, const float* alpha,
                                     const float* dcontext, float* de, float* dkeys, float* duh, float* da,
                                     float* dv_rows) {
  // Everything of sentence n touches only rows (j, n): sentences are independent, so the
  // result does not depend on the thread count.
#pragma omp parallel for schedule(static) if (static_cast <std::int64_t>(S) * N * A > 4 * kChunk)
  for (int n = 0; n < N; ++n) {
    const int len = lengths[n];
    const float* dc = dcontext + static_cast<std::int64_t>(n) * K;
    // context: dalpha_j = dc . h_j, dh_j += alpha_j dc
    double s = 0.0;
    for (int j = 0; j < len; ++j) {
      const std::int64_t r = static_cast<std::int64_t>(j) * N + n;
      const float* h = keys + r * K;
      float* dh = dkeys + r * K;
      const float w = alpha[r];
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (std::int64_t k = 0; k < K; ++k) {
        dot += dc[k] * h[k];
        dh[k] += w * dc[k];
      }
      de[r] = dot;
      s += static_cast<double>(w) * dot;
    }
    // softmax: de_j = alpha_j (dalpha_j - sum_j' alpha_j' dalpha_j')
    for (int j = 0; j < len; ++j) {
      const std::int64_t r = static_cast<std::int64_t>(j) * N + n;
      de[r] = alpha[r] * (de[r] - static_cast<float>(s));
    }
    // scores: e_j = v . tanh(z_j), z_j = uh_j + a
    const float* an = a + static_cast<std::int64_t>(n) * A;
    float* dan = da + static_cast<std::int64_t>(n) * A;
    float* dvn = dv_rows + static_cast<std::int64_t>(n) * A;
    std::memset(dan, 0, static_cast<std::size_t>(A) * sizeof(float));
    for (int j = 0; j < len; ++j) {
      const std::int64_t r = static_cast<std::int64_t>(j) * N + n;
      const float g = de[r];
      const float* u = uh + r * A;
      float* du = duh + r * A;
#pragma omp simd
      for (std::int64_t k = 0; k < A; ++k) {
        const float t = tanh_f(u[k] + an[k]);
        const float dz = g * v[k] * (1.0f - t * t);
        du[k] += dz;
        dan[k] += dz;
        dvn[k] += g * t;
      }
    }
  }
}

GLOSS_CLONES std::int64_t argmax(std::int64_t n, const float* x) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (std::int64_t i = 0; i < n; ++i) mx = max_or_keep(mx, x[i]);  // skips NaN
  constexpr std::int64_t kBlock = 64;                               // then the first block holding it, then the entry
  for (std::int64_t b = 0; b < n; b += kBlock) {
    const std::int64_t end = std::min(n, b + kBlock);
    int hit = 0;
#pragma omp simd reduction(| : hit)
    for (std::int64_t i = b; i < end; ++i) hit |= x[i] == mx;
    if (hit)
      for (std::int64_t i = b; i < end; ++i)
        if (x[i] == mx) return i;
  }
  return 0;
}

namespace {
// The largest entry of each block of x[0..n) into out[b] (entries [b * block, (b + 1) * block)
// cut at n); NaN skipped (-inf for a block of NaN only).
GLOSS_CLONES void block_max(std::int64_t n, const float* x, std::int64_t block, float* out) {
  for (std::int64_t b = 0; b * block < n; ++b) {
    const std::int64_t begin = b * block, end = std::min(n, begin + block);
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (std::int64_t i = begin; i < end; ++i) mx = max_or_keep(mx, x[i]);
    out[b] = mx;
  }
}
}  // namespace

void top_k(std::int64_t n, const float* x, int k, std::vector<std::pair<float, std::int32_t>>& out) {
  constexpr std::int64_t kBlock = 64;
  out.clear();
  if (n <= 0 || k <= 0) return;
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
  const auto want = static_cast<std::size_t>(k);
  thread_local std::vector<float> maxima, largest;  // largest: the k largest maxima so far, descending
  maxima.resize(static_cast<std::size_t>(blocks));
  block_max(n, x, kBlock, maxima.data());
  largest.clear();
  for (float m : maxima) {
    if (largest.size() == want && !(m > largest.back())) continue;  // most blocks: one comparison
    if (largest.size() == want) largest.pop_back();
    largest.insert(std::upper_bound(largest.begin(), largest.end(), m, std::greater<>()), m);
  }
  const float t = largest.size() == want ? largest.back() : -std::numeric_limits<float>::infinity();
  for (std::int64_t b = 0; b < blocks; ++b) {
    if (!(maxima[static_cast<std::size_t>(b)] >= t)) continue;
    const std::int64_t end = std::min(n, (b + 1) * kBlock);
    for (std::int64_t i = b * kBlock; i < end; ++i)
      if (x[i] >= t) out.emplace_back(x[i], static_cast<std::int32_t>(i));  // never NaN
  }
  const auto by_value = [](const auto& a, const auto& c) {
    return a.first > c.first || (a.first == c.first && a.second < c.second);
  };
  const auto kept = std::min(want, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(kept), out.end(), by_value);
  out.resize(kept);
}

GLOSS_CLONES double log_sum_exp(std::int64_t n, const float* x) {
  if (n <= 0) return -std::numeric_limits<double>::infinity();
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (std::int64_t i = 0; i < n; ++i) mx = max_or_keep(mx, x[i]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t i = 0; i < n; ++i) sum += exp_f(x[i] - mx);
  return static_cast<double>(mx) + std::log(static_cast<double>(sum));
}

GLOSS_CLONES double log_sum_exp(std::int64_t n, const std::int32_t* cols, const float* x) {
  if (n <= 0) return -std::numeric_limits<double>::infinity();
  float mx = x[cols[0]];
#pragma omp simd reduction(max : mx)
  for (std::int64_t i = 0; i < n; ++i) mx = max_or_keep(mx, x[cols[i]]);
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (std::int64_t i = 0; i < n; ++i) sum += exp_f(x[cols[i]] - mx);
  return static_cast<double>(mx) + std::log(static_cast<double>(sum));
}

GLOSS_CLONES void cross_entropy_rows(std::int64_t m, std::int64_t v, float* logits, const std::int32_t* targets,
                                     int pad, float label_smoothing, bool grad, float scale, double* row_loss,
                                     double* row_nll) {
  const float eps = label_smoothing, uniform = label_smoothing / static_cast<float>(v);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < m; ++i) {
    float* row = logits + i * v;
    if (targets[i] == pad) {
      row_loss[i] = row_nll[i] = 0.0;
      if (grad) std::memset(row, 0, static_cast<std::size_t>(v) * sizeof(float));
      continue;
    }
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (std::int64_t k = 0; k < v; ++k) mx = max_or_keep(mx, row[k]);
    float sum = 0.0f, sum_logits = 0.0f;
#pragma omp simd reduction(+ : sum, sum_logits)
    for (std::int64_t k = 0; k < v; ++k) {
      sum += exp_f(row[k] - mx);
      sum_logits += row[k];
    }
    const double log_z = static_cast<double>(mx) + std::log(static_cast<double>(sum));
    const double nll = log_z - row[targets[i]];
    row_nll[i] = nll;
    row_loss[i] = (1.0 - eps) * nll + eps * (log_z - static_cast<double>(sum_logits) / static_cast<double>(v));
    if (grad) {
      const float lz = static_cast<float>(log_z);
#pragma omp simd
      for (std::int64_t k = 0; k < v; ++k) row[k] = scale * (exp_f(row[k] - lz) - uniform);
      row[targets[i]] -= scale * (1.0f - eps);
    }
  }
}

}  // namespace gloss::kernels
