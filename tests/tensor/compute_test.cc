// compute: the bf16 conversion's rounding rule, gemm() inside Bf16Gemms against a
// double-precision product of the bf16-rounded operands, and where the profile counts a
// worker's wait.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "gloss/tensor/compute.h"
#include "gloss/util/rng.h"

using namespace gloss;

namespace {

float from_bits(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

std::uint16_t one_bf16(float f) {  // n = 1: the element-by-element path
  std::uint16_t h;
  compute::to_bf16(1, &f, &h);
  return h;
}

}  // namespace

TEST_CASE("to_bf16: round to nearest even, inf, NaN and subnormals kept, long arrays as single values", "[tensor]") {
  CHECK(one_bf16(1.0f) == 0x3F80);
  CHECK(one_bf16(from_bits(0x3F808000u)) == 0x3F80);  // a tie rounds to the even neighbour
  CHECK(one_bf16(from_bits(0x3F818000u)) == 0x3F82);
  CHECK(one_bf16(from_bits(0x3F808001u)) == 0x3F81);  // above the tie rounds up
  CHECK(one_bf16(std::numeric_limits<float>::infinity()) == 0x7F80);
  CHECK(one_bf16(-std::numeric_limits<float>::infinity()) == 0xFF80);
  const std::uint16_t nan = one_bf16(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7F80) == 0x7F80);
  CHECK((nan & 0x007F) != 0);
  CHECK(one_bf16(from_bits(0x7F800001u)) != 0x7F80);  // a NaN with only low bits stays a NaN
  CHECK(one_bf16(from_bits(0x00010000u)) == 0x0001);  // a subnormal is kept, not flushed
  CHECK(one_bf16(from_bits(0x7F7FFFFFu)) == 0x7F80);  // the largest float rounds up to inf
  // Arrays of every length around the 16-wide blocks: each value as when converted alone.
  Rng rng(5);
  std::vector<float> x(53);
  for (auto& v : x) v = rng.uniform(-3.f, 3.f);
  x[3] = std::numeric_limits<float>::quiet_NaN();
  x[20] = from_bits(0x7F800001u);
  x[21] = -std::numeric_limits<float>::infinity();
  x[22] = from_bits(0x00008000u);
  x[33] = from_bits(0x3F808000u);
  for (std::size_t n : {std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{53}}) {
    std::vector<std::uint16_t> h(n);
    compute::to_bf16(static_cast<std::int64_t>(n), x.data(), h.data());
    for (std::size_t i = 0; i < n; ++i) REQUIRE(h[i] == one_bf16(x[i]));
  }
}

TEST_CASE("gemm in a Bf16Gemms scope: the product of the bf16-rounded operands, every layout", "[tensor][bf16]") {
  if (!compute::has_bf16()) {
    WARN("this CPU lacks AVX512-BF16: the bf16 GEMM test does not apply");
    return;
  }
  compute::set_threads(1);
  const std::int64_t m = 7, n = 13, k = 37, pad = 3;  // leading dimensions padded by `pad`
  Rng rng(17);
  auto rounded = [](const std::vector<float>& v) {
    std::vector<std::uint16_t> h(v.size());
    std::vector<float> r(v.size());
    compute::to_bf16(static_cast<std::int64_t>(v.size()), v.data(), h.data());
    compute::from_bf16(static_cast<std::int64_t>(v.size()), h.data(), r.data());
    return r;
  };
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float alpha : {1.0f, 0.5f})
        for (float beta : {0.0f, 1.0f, 0.3f}) {
          const std::int64_t lda = (ta ? m : k) + pad, ldb = (tb ? k : n) + pad, ldc = n + pad;
          std::vector<float> a(static_cast<std::size_t>((ta ? k : m) * lda)),
              b(static_cast<std::size_t>((tb ? n : k) * ldb)), c(static_cast<std::size_t>(m * ldc));
          for (auto* v : {&a, &b, &c})
            for (auto& e : *v) e = rng.uniform(-1.f, 1.f);
          const auto a16 = rounded(a), b16 = rounded(b);
          std::vector<float> c16 = c, c32 = c;
          {
            const compute::Bf16Gemms scope;
            CHECK(compute::bf16_gemms());
            compute::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c16.data(), ldc);
          }
          CHECK(!compute::bf16_gemms());
          compute::gemm(ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c32.data(), ldc);
          double err = 0, err32 = 0;
          for (std::int64_t i = 0; i < m; ++i)
            for (std::int64_t j = 0; j < ldc; ++j) {
              const std::size_t at = static_cast<std::size_t>(i * ldc + j);
              if (j >= n) {  // outside the matrix: untouched
                REQUIRE(c16[at] == c[at]);
                continue;
              }
              double exact = 0;
              for (std::int64_t p = 0; p < k; ++p) {
                const std::size_t ai = static_cast<std::size_t>(ta ? p * lda + i : i * lda + p);
                const std::size_t bi = static_cast<std::size_t>(tb ? j * ldb + p : p * ldb + j);
                exact += static_cast<double>(a16[ai]) * b16[bi];
              }
              exact = alpha * exact + beta * c[at];
              err = std::max(err, std::fabs(c16[at] - exact));
              err32 = std::max(err32, std::fabs(c32[at] - exact));
            }
          INFO("trans_a " << ta << ", trans_b " << tb << ", alpha " << alpha << ", beta " << beta);
          CHECK(err < 2e-5);    // f32 accumulation of exact bf16 products
          CHECK(err32 > 1e-4);  // the f32 GEMM (unrounded operands) differs: the scope did something
        }
}

TEST_CASE("PackedBf16Weight: the product of the bf16-rounded operands, either orientation, any rows, repacked",
          "[tensor][bf16]") {
  if (!compute::has_bf16()) {
    WARN("this CPU lacks AVX512-BF16: the packed bf16 GEMM test does not apply");
    return;
  }
  compute::set_threads(1);
  Rng rng(19);
  auto rounded = [](std::vector<float> v) {
    std::vector<std::uint16_t> h(v.size());
    compute::to_bf16(static_cast<std::int64_t>(v.size()), v.data(), h.data());
    compute::from_bf16(static_cast<std::int64_t>(v.size()), h.data(), v.data());
    return v;
  };
  for (const auto& [k, n] : {std::pair<std::int64_t, std::int64_t>{37, 13}, {96, 80}})
    for (bool trans : {false, true}) {
      std::vector<float> b(static_cast<std::size_t>(k * n));  // [k x n], or [n x k] when trans
      compute::PackedBf16Weight w;
      for (int update = 0; update < 2; ++update) {  // new values, packed again
        for (auto& e : b) e = rng.uniform(-1.f, 1.f);
        w.pack(trans, k, n, b.data());
        const auto b16 = rounded(b);
        for (const std::int64_t m : {7, 32, 7})  // another row count: another layout, maybe
          for (float beta : {0.0f, 1.0f}) {
            const std::int64_t lda = k + 3, ldc = n + 2;
            std::vector<float> a(static_cast<std::size_t>(m * lda)), c(static_cast<std::size_t>(m * ldc));
            for (auto* v : {&a, &c})
              for (auto& e : *v) e = rng.uniform(-1.f, 1.f);
            const auto a16 = rounded(a);
            std::vector<float> out = c;
            w.run(m, a.data(), lda, beta, out.data(), ldc);
            double err = 0;
            bool outside_kept = true;
            for (std::int64_t i = 0; i < m; ++i)
              for (std::int64_t j = 0; j < ldc; ++j) {
                const auto at = static_cast<std::size_t>(i * ldc + j);
                if (j >= n) {
                  outside_kept = outside_kept && out[at] == c[at];
                  continue;
                }
                double exact = beta * c[at];
                for (std::int64_t p = 0; p < k; ++p)
                  exact += static_cast<double>(a16[static_cast<std::size_t>(i * lda + p)]) *
                           b16[static_cast<std::size_t>(trans ? j * k + p : p * n + j)];
                err = std::max(err, std::fabs(out[at] - exact));
              }
            INFO("k " << k << ", n " << n << ", trans " << trans << ", update " << update << ", m " << m << ", beta "
                      << beta);
            CHECK(outside_kept);
            CHECK(err < 4e-5);  // f32 accumulation of exact bf16 products
          }
      }
    }
  compute::PackedBf16Weight unpacked;
  float x = 1.0f, y = 0.0f;
  CHECK_THROWS_AS(unpacked.run(1, &x, 1, 0.0f, &y, 1), std::logic_error);
}

TEST_CASE("Profile: a worker's wait counts as worker_wait only outside another stage's timer", "[compute]") {
  using compute::Stage;
  const auto uneven = [](int, std::size_t task) {  // task 1 ends 20 ms after task 0: a worker waits
    if (task == 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  compute::set_profiling(true);
  compute::reset_stage_seconds();
  {
    const compute::StageTimer timer(Stage::kOptimizer);  // as the optimiser's step runs its blocks
    compute::run_workers(2, 2, uneven);
  }
  CHECK(compute::stage_seconds(Stage::kWorkerWait) == 0.0);
  CHECK(compute::stage_seconds(Stage::kOptimizer) >= 0.02);
  compute::run_workers(2, 2, uneven);  // as training's batch runs its replicas
  CHECK(compute::stage_seconds(Stage::kWorkerWait) >= 0.015);
  compute::set_profiling(false);
  compute::reset_stage_seconds();
}
