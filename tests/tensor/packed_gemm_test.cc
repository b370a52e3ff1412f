// PackedF32Weight: every shape around the 6 x 16 tile (and one row's four panels at a time),
// transposed or not, with row strides wider than the rows and beta 0 or 1, against a
// double-precision product, for the AVX2 and the portable kernel; a row's result independent
// of the other rows; beta 0 never reading C; shared_packed's copies shared and remade.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gloss/tensor/packed_gemm.h"
#include "gloss/util/rng.h"

using namespace gloss;

namespace {

struct Case {
  std::int64_t m, k, n;
  bool trans;
  float beta;
};

struct Operands {
  std::int64_t lda, ldb, ldc;
  std::vector<float> a, b, c;
};

Operands operands(const Case& cs, Rng& rng) {
  Operands o{cs.k + 3, (cs.trans ? cs.k : cs.n) + 5, cs.n + 2, {}, {}, {}};
  o.a.resize(static_cast<std::size_t>(cs.m * o.lda));
  o.b.resize(static_cast<std::size_t>((cs.trans ? cs.n : cs.k) * o.ldb));
  o.c.resize(static_cast<std::size_t>(cs.m * o.ldc));
  for (auto& v : o.a) v = rng.uniform(-1.f, 1.f);
  for (auto& v : o.b) v = rng.uniform(-1.f, 1.f);
  // beta 0: C must not be read, so NaNs there would show in the result
  for (auto& v : o.c) v = cs.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : rng.uniform(-1.f, 1.f);
  return o;
}

// Outputs off the double-precision product by more than 1e-5 (|products| sum relative), and
// padding between C's rows that changed.
int mismatches(const Case& cs, const Operands& o, const std::vector<float>& c) {
  int bad = 0;
  for (std::int64_t i = 0; i < cs.m; ++i)
    for (std::int64_t j = 0; j < o.ldc; ++j) {
      const float before = o.c[i * o.ldc + j], got = c[i * o.ldc + j];
      if (j >= cs.n) {
        bad += std::isnan(before) ? !std::isnan(got) : got != before;
        continue;
      }
      double want = cs.beta == 0.0f ? 0.0 : static_cast<double>(cs.beta) * before, scale = std::fabs(want) + 1e-3;
      for (std::int64_t kk = 0; kk < cs.k; ++kk) {
        const double b = cs.trans ? o.b[j * o.ldb + kk] : o.b[kk * o.ldb + j];
        want += static_cast<double>(o.a[i * o.lda + kk]) * b;
        scale += std::fabs(static_cast<double>(o.a[i * o.lda + kk]) * b);
      }
      bad += !(std::fabs(got - want) <= 1e-5 * scale);
    }
  return bad;
}

std::vector<Case> cases() {
  std::vector<Case> all;
  for (std::int64_t m : {1, 3, 4, 5, 6, 7, 13, 32})
    for (std::int64_t k : {0, 1, 17, 64})
      for (std::int64_t n : {1, 15, 16, 17, 40, 70})
        for (bool trans : {false, true})
          for (float beta : {0.0f, 1.0f}) all.push_back({m, k, n, trans, beta});
  return all;
}

}  // namespace

TEST_CASE("PackedF32Weight equals a double-precision GEMM for every shape around its tile", "[tensor]") {
  for (bool portable : {false, true}) {
    compute::use_portable_packed_gemm(portable);
    Rng rng(11);
    int bad = 0, runs = 0;
    for (const Case& cs : cases()) {
      const Operands o = operands(cs, rng);
      std::vector<float> b = o.b, c = o.c;
      compute::PackedF32Weight w;
      w.pack(cs.trans, cs.k, cs.n, b.data(), o.ldb);
      std::fill(b.begin(), b.end(), 0.0f);  // pack copied B: changing it changes nothing
      w.run(cs.m, o.a.data(), o.lda, cs.beta, c.data(), o.ldc);
      const int wrong = mismatches(cs, o, c);
      if (wrong > 0)
        INFO("m " << cs.m << " k " << cs.k << " n " << cs.n << " trans " << cs.trans << " beta " << cs.beta);
      CHECK(wrong == 0);
      bad += wrong;
      ++runs;
    }
    CHECK(runs == 8 * 4 * 6 * 2 * 2);
    CHECK(bad == 0);
  }
  compute::use_portable_packed_gemm(false);
}

TEST_CASE("PackedF32Weight: a row's result does not depend on the rows around it", "[tensor]") {
  Rng rng(12);
  const Case all{32, 70, 50, false, 0.0f};
  const Operands o = operands(all, rng);
  compute::PackedF32Weight w;
  w.pack(false, all.k, all.n, o.b.data(), o.ldb);
  std::vector<float> c32 = o.c;
  w.run(32, o.a.data(), o.lda, 0.0f, c32.data(), o.ldc);
  int differ = 0;
  for (std::int64_t first : {0, 5, 13})
    for (std::int64_t m : {1, 4, 9, 19}) {
      std::vector<float> c = o.c;
      w.run(m, o.a.data() + first * o.lda, o.lda, 0.0f, c.data(), o.ldc);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < all.n; ++j) differ += c[i * o.ldc + j] != c32[(first + i) * o.ldc + j];
    }
  CHECK(differ == 0);
  CHECK_THROWS_AS(compute::PackedF32Weight().run(1, o.a.data(), o.lda, 0.0f, c32.data(), o.ldc), std::logic_error);
}

TEST_CASE("shared_packed: one copy per weight and version for every caller, a new one when the version moves",
          "[tensor]") {
  const std::int64_t k = 7, n = 20;
  std::vector<float> b(static_cast<std::size_t>(k * n)), a(static_cast<std::size_t>(k), 1.0f);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i);
  // Two threads asking at once (data-parallel workers) get the same copy.
  std::shared_ptr<const compute::PackedF32Weight> first, second;
  std::thread other([&] { second = compute::shared_packed(false, k, n, b.data(), n, 1); });
  first = compute::shared_packed(false, k, n, b.data(), n, 1);
  other.join();
  CHECK(first.get() == second.get());
  CHECK(compute::shared_packed(false, k, n, b.data(), n, 1).get() == first.get());
  // Another transposition or shape of the same memory is another copy.
  CHECK(compute::shared_packed(true, n, k, b.data(), k, 1).get() != first.get());
  // New values under a new version: a new copy that computes with them; the old one unchanged.
  for (float& v : b) v = -v;
  const auto moved = compute::shared_packed(false, k, n, b.data(), n, 2);
  CHECK(moved.get() != first.get());
  std::vector<float> old_c(static_cast<std::size_t>(n)), new_c(static_cast<std::size_t>(n));
  first->run(1, a.data(), k, 0.0f, old_c.data(), n);
  moved->run(1, a.data(), k, 0.0f, new_c.data(), n);
  int negated = 0;
  for (std::int64_t j = 0; j < n; ++j)
    negated += new_c[static_cast<std::size_t>(j)] == -old_c[static_cast<std::size_t>(j)];
  CHECK(negated == n);
  CHECK(old_c[1] > 0.0f);
}
