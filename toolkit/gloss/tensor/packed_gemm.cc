#include "gloss/tensor/packed_gemm.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <tuple>

#include "gloss/tensor/compute.h"

namespace gloss::compute {
namespace {

constexpr std::int64_t kCols = 16;  // a panel's columns: two AVX2 vectors
constexpr std::int64_t kRows = 6;   // a tile's rows: 12 accumulators, 2 B vectors, 1 broadcast
using Tile = float[kRows][kCols];

std::atomic<bool> g_portable{false};

bool has_avx2_fma() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

#if defined(__x86_64__) && defined(__GNUC__)
// One row of a tile at one k: its 16 accumulators (two vectors) += A's value there x B's line k.
__attribute__((target("avx2,fma"), always_inline)) inline void row_fma(const float* a, __m256 b0, __m256 b1, __m256& c0,
                                                                       __m256& c1) {
  const __m256 x = _mm256_broadcast_ss(a);
  c0 = _mm256_fmadd_ps(x, b0, c0);
  c1 = _mm256_fmadd_ps(x, b1, c1);
}

// t's first R rows = R rows of A (row stride lda) times panel p [K x 16]; touches the next
// panel's line k at step k (next may be null) so that it streams in while this one is computed.
template <int R>
__attribute__((target("avx2,fma"))) void tile_avx2(std::int64_t K, const float* a, std::int64_t lda, const float* p,
                                                   const float* next, Tile& t) {
  static_assert(R >= 1 && R <= kRows);
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (std::int64_t k = 0; k < K; ++k) {
    if (next) _mm_prefetch(reinterpret_cast<const char*>(next + k * kCols), _MM_HINT_T0);
    const __m256 b0 = _mm256_load_ps(p + k * kCols), b1 = _mm256_load_ps(p + k * kCols + 8);
    row_fma(a + k, b0, b1, c00, c01);
    if constexpr (R > 1) row_fma(a + lda + k, b0, b1, c10, c11);
    if constexpr (R > 2) row_fma(a + 2 * lda + k, b0, b1, c20, c21);
    if constexpr (R > 3) row_fma(a + 3 * lda + k, b0, b1, c30, c31);
    if constexpr (R > 4) row_fma(a + 4 * lda + k, b0, b1, c40, c41);
    if constexpr (R > 5) row_fma(a + 5 * lda + k, b0, b1, c50, c51);
  }
  const __m256 rows[kRows][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (std::int64_t r = 0; r < R; ++r) {
    _mm256_storeu_ps(t[r], rows[r][0]);
    _mm256_storeu_ps(t[r] + 8, rows[r][1]);
  }
}

// One row against four consecutive panels at once, into out [64]: eight accumulators, enough
// independent chains for both FMA units (tile_avx2<1> has two, and waits on their latency).
// Each output is the same chain over k as in tile_avx2.
__attribute__((target("avx2,fma"))) void row_avx2_4_panels(std::int64_t K, const float* a, const float* p, float* out) {
  const std::int64_t stride = K * kCols;  // from one panel to the next
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (std::int64_t k = 0; k < K; ++k) {
    const float* line = p + k * kCols;
    row_fma(a + k, _mm256_load_ps(line), _mm256_load_ps(line + 8), c00, c01);
    row_fma(a + k, _mm256_load_ps(line + stride), _mm256_load_ps(line + stride + 8), c10, c11);
    row_fma(a + k, _mm256_load_ps(line + 2 * stride), _mm256_load_ps(line + 2 * stride + 8), c20, c21);
    row_fma(a + k, _mm256_load_ps(line + 3 * stride), _mm256_load_ps(line + 3 * stride + 8), c30, c31);
  }
  _mm256_storeu_ps(out, c00);
  _mm256_storeu_ps(out + 8, c01);
  _mm256_storeu_ps(out + 16, c10);
  _mm256_storeu_ps(out + 24, c11);
  _mm256_storeu_ps(out + 32, c20);
  _mm256_storeu_ps(out + 40, c21);
  _mm256_storeu_ps(out + 48, c30);
  _mm256_storeu_ps(out + 56, c31);
}

void tile_avx2_rows(std::int64_t rows, std::int64_t K, const float* a, std::int64_t lda, const float* p,
                    const float* next, Tile& t) {
  switch (rows) {
    case 1:
      return tile_avx2<1>(K, a, lda, p, next, t);
    case 2:
      return tile_avx2<2>(K, a, lda, p, next, t);
    case 3:
      return tile_avx2<3>(K, a, lda, p, next, t);
    case 4:
      return tile_avx2<4>(K, a, lda, p, next, t);
    case 5:
      return tile_avx2<5>(K, a, lda, p, next, t);
    default:
      return tile_avx2<6>(K, a, lda, p, next, t);
  }
}
#endif

// tile_avx2's sums, in the same order, without fused multiply-adds.
void tile_portable(std::int64_t rows, std::int64_t K, const float* a, std::int64_t lda, const float* p, Tile& t) {
  for (std::int64_t r = 0; r < rows; ++r) std::fill(t[r], t[r] + kCols, 0.0f);
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t r = 0; r < rows; ++r) {
      const float x = a[r * lda + k];
      for (std::int64_t j = 0; j < kCols; ++j) t[r][j] += x * p[k * kCols + j];
    }
}

// cols sums t into one row of C: out = t + beta out (beta 0: out not read).
void store_row(const float* t, std::int64_t cols, float beta, float* out) {
  if (beta == 0.0f)
    std::copy(t, t + cols, out);
  else
    for (std::int64_t j = 0; j < cols; ++j) out[j] = t[j] + beta * out[j];
}

// The first `rows` x `cols` of t into C (row stride ldc), as store_row.
void store(const Tile& t, std::int64_t rows, std::int64_t cols, float beta, float* c, std::int64_t ldc) {
  for (std::int64_t r = 0; r < rows; ++r) store_row(t[r], cols, beta, c + r * ldc);
}

}  // namespace

void use_portable_packed_gemm(bool on) { g_portable = on; }

std::shared_ptr<const PackedF32Weight> shared_packed(bool trans, std::int64_t k, std::int64_t n, const float* b,
                                                     std::int64_t ldb, std::uint64_t version) {
  using Key = std::tuple<const float*, bool, std::int64_t, std::int64_t, std::int64_t>;
  struct Entry {
    std::uint64_t version = 0;
    std::weak_ptr<const PackedF32Weight> copy;
  };
  static std::mutex mutex;
  static std::map<Key, Entry> copies;  // expired entries dropped at each new pack
  const std::lock_guard<std::mutex> lock(mutex);
  Entry& entry = copies[Key{b, trans, k, n, ldb}];
  if (entry.version == version)
    if (auto copy = entry.copy.lock()) return copy;
  auto copy = std::make_shared<PackedF32Weight>();
  copy->pack(trans, k, n, b, ldb);
  entry = {version, copy};
  std::erase_if(copies, [](const auto& e) { return e.second.copy.expired(); });
  return copy;
}

const PackedF32Weight& PackedCopy::get(bool trans, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb,
                                       std::uint64_t version) {
  if (!copy_ || b_ != b || version_ != version) {
    copy_ = shared_packed(trans, k, n, b, ldb, version);
    b_ = b;
    version_ = version;
  }
  return *copy_;
}

void PackedF32Weight::pack(bool trans, std::int64_t k, std::int64_t n, const float* b, std::int64_t ldb) {
  if (k < 0 || n < 0) throw std::logic_error("PackedF32Weight::pack: negative size");
  k_ = k;
  n_ = n;
  const std::int64_t panels = (n + kCols - 1) / kCols;
  panels_.resize({panels, k, kCols});
  for (std::int64_t q = 0; q < panels; ++q) {
    float* p = panels_.data() + q * k * kCols;
    const std::int64_t j0 = q * kCols, cols = std::min(kCols, n - j0);
    if (cols < kCols) std::fill(p, p + k * kCols, 0.0f);
    if (trans)  // column j of the panel is row j0 + j of B, read in order
      for (std::int64_t j = 0; j < cols; ++j) {
        const float* from = b + (j0 + j) * ldb;
        for (std::int64_t kk = 0; kk < k; ++kk) p[kk * kCols + j] = from[kk];
      }
    else
      for (std::int64_t kk = 0; kk < k; ++kk) std::copy(b + kk * ldb + j0, b + kk * ldb + j0 + cols, p + kk * kCols);
  }
}

void PackedF32Weight::run(std::int64_t m, const float* a, std::int64_t lda, float beta, float* c,
                          std::int64_t ldc) const {
  if (k_ < 0) throw std::logic_error("PackedF32Weight::run before pack");
  if (m <= 0 || n_ == 0) return;
  const StageTimer timer(Stage::kGemm);
  const bool fast = has_avx2_fma() && !g_portable;
  const std::int64_t K = k_, panels = (n_ + kCols - 1) / kCols;
  std::int64_t q0 = 0;  // the first panel left to the loop below
#if defined(__x86_64__) && defined(__GNUC__)
  if (fast && m == 1) {  // one row (greedy search of one sentence): four panels at a time
    float out[4 * kCols];
    for (; q0 + 4 <= panels; q0 += 4) {
      row_avx2_4_panels(K, a, panels_.data() + q0 * K * kCols, out);
      store_row(out, std::min(4 * kCols, n_ - q0 * kCols), beta, c + q0 * kCols);
    }
  }
#endif
  alignas(32) Tile t;
  for (std::int64_t q = q0; q < panels; ++q) {
    const float* p = panels_.data() + q * K * kCols;
    const std::int64_t j0 = q * kCols, cols = std::min(kCols, n_ - j0);
    for (std::int64_t r = 0; r < m; r += kRows) {
      const std::int64_t rows = std::min(kRows, m - r);
#if defined(__x86_64__) && defined(__GNUC__)
      if (fast) {
        tile_avx2_rows(rows, K, a + r * lda, lda, p, r == 0 && q + 1 < panels ? p + K * kCols : nullptr, t);
      } else {
        tile_portable(rows, K, a + r * lda, lda, p, t);
      }
#else
      tile_portable(rows, K, a + r * lda, lda, p, t);
#endif
      store(t, rows, cols, beta, c + r * ldc + j0, ldc);
    }
  }
  add_flops(2.0 * static_cast<double>(m) * static_cast<double>(n_) * static_cast<double>(K));
}

}  // namespace gloss::compute
