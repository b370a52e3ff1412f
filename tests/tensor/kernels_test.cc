// kernels: the vectorised argmax, top_k and log_sum_exp against plain scans and sorts; transpose,
// tanh_inplace and move_add against the definition and across their serial and threaded paths.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/rng.h"

using namespace gloss;

namespace {
std::int64_t first_largest(const std::vector<float>& x) {  // the plain scan
  std::int64_t best = -1;
  for (std::size_t i = 0; i < x.size(); ++i)
    if (x[i] == x[i] && (best < 0 || x[i] > x[static_cast<std::size_t>(best)])) best = static_cast<std::int64_t>(i);
  return best < 0 ? 0 : best;
}
}  // namespace

TEST_CASE("argmax: the first largest entry, as a plain scan finds it", "[tensor]") {
  Rng rng(3);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (const int size : {1, 2, 15, 16, 17, 63, 64, 65, 200, 8000}) {
    const auto n = static_cast<std::size_t>(size);
    std::vector<float> x(n);
    for (int trial = 0; trial < 20; ++trial) {
      for (auto& v : x) v = static_cast<float>(static_cast<int>(rng.below(50))) - 60.f;  // many ties
      if (trial % 4 == 1) x[rng.below(n)] = nan;
      if (trial % 4 == 2) x[n - 1] = 5.f;  // the largest last
      if (trial % 4 == 3) x[rng.below(n)] = -inf;
      INFO("n " << n << ", trial " << trial);
      REQUIRE(kernels::argmax(static_cast<std::int64_t>(n), x.data()) == first_largest(x));
    }
  }
  CHECK(kernels::argmax(3, std::vector<float>{nan, nan, nan}.data()) == 0);
  CHECK(kernels::argmax(3, std::vector<float>{-inf, -inf, -inf}.data()) == 0);
  CHECK(kernels::argmax(4, std::vector<float>{nan, 1.f, 2.f, 2.f}.data()) == 2);
}

TEST_CASE("top_k: the k largest entries, largest first and ties by index, as a full sort finds them", "[tensor]") {
  Rng rng(5);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<std::pair<float, std::int32_t>> got;
  for (const int size : {1, 9, 63, 64, 65, 130, 700, 8000}) {
    const auto n = static_cast<std::size_t>(size);
    std::vector<float> x(n);
    for (const int k : {1, 2, 10, 80}) {
      for (int trial = 0; trial < 12; ++trial) {
        const int spread = trial % 2 == 0 ? 30 : 100000;  // many ties, or few
        for (auto& v : x) v = static_cast<float>(static_cast<int>(rng.below(static_cast<std::uint64_t>(spread))));
        if (trial % 3 == 1) x[rng.below(n)] = nan;  // never chosen
        if (trial % 4 == 2) x[rng.below(n)] = -inf;
        if (trial % 4 == 3)
          for (std::size_t i = 0; i < n; i += 3) x[i] = nan;
        std::vector<std::pair<float, std::int32_t>> expected;
        for (std::size_t i = 0; i < n; ++i)
          if (x[i] == x[i]) expected.emplace_back(x[i], static_cast<std::int32_t>(i));
        std::stable_sort(expected.begin(), expected.end(),
                         [](const auto& a, const auto& b) { return a.first > b.first; });
        if (expected.size() > static_cast<std::size_t>(k)) expected.resize(static_cast<std::size_t>(k));
        INFO("n " << n << ", k " << k << ", trial " << trial);
        kernels::top_k(static_cast<std::int64_t>(n), x.data(), k, got);
        REQUIRE(got == expected);
      }
    }
  }
  kernels::top_k(3, std::vector<float>{nan, nan, nan}.data(), 2, got);
  CHECK(got.empty());
  kernels::top_k(0, nullptr, 2, got);
  CHECK(got.empty());
}

TEST_CASE("log_sum_exp: a double-precision sum, wherever the largest entry is", "[tensor]") {
  Rng rng(7);
  for (const int size : {1, 15, 16, 17, 100, 8000}) {
    const auto n = static_cast<std::size_t>(size);
    std::vector<float> x(n);
    std::vector<std::int32_t> cols;
    for (int trial = 0; trial < 10; ++trial) {
      for (auto& v : x) v = rng.uniform(-20.f, 20.f);
      x[trial % 2 ? n - 1 : rng.below(n)] = 60.f;  // the largest, last or anywhere
      double mx = -1e300, sum = 0;
      for (float v : x) mx = std::max(mx, static_cast<double>(v));
      for (float v : x) sum += std::exp(static_cast<double>(v) - mx);
      const double expected = mx + std::log(sum);
      INFO("n " << n << ", trial " << trial);
      REQUIRE(kernels::log_sum_exp(static_cast<std::int64_t>(n), x.data()) == Approx(expected).epsilon(1e-6));
      cols.clear();  // every second column, through the index list
      double sub = 0, submx = -1e300;
      for (std::size_t i = 0; i < n; i += 2) {
        cols.push_back(static_cast<std::int32_t>(i));
        submx = std::max(submx, static_cast<double>(x[i]));
      }
      for (auto c : cols) sub += std::exp(static_cast<double>(x[static_cast<std::size_t>(c)]) - submx);
      REQUIRE(kernels::log_sum_exp(static_cast<std::int64_t>(cols.size()), cols.data(), x.data()) ==
              Approx(submx + std::log(sub)).epsilon(1e-6));
    }
  }
}

TEST_CASE("transpose: out[c][r] = in[r][c], across and inside its tiles, on 1 and 2 threads", "[tensor]") {
  for (const int threads : {1, 2}) {
    compute::set_threads(threads);
    for (const auto& [rows, cols] : {std::pair{1, 1}, {1, 40}, {31, 1}, {32, 32}, {45, 70}, {768, 1536}}) {
      std::vector<float> in(static_cast<std::size_t>(rows * cols)), out(in.size(), -1.0f);
      for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
      kernels::transpose(rows, cols, in.data(), out.data());
      INFO(rows << " x " << cols << ", threads " << threads);
      bool same = true;
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
          same = same && out[static_cast<std::size_t>(c * rows + r)] == in[static_cast<std::size_t>(r * cols + c)];
      CHECK(same);
    }
  }
  compute::set_threads(1);
}

TEST_CASE("tanh_inplace and move_add: one thread's path and the threads' path agree bit for bit", "[tensor]") {
  const std::int64_t n = 4 * (1 << 14) + 4099;  // past the size where two threads share the loop
  std::vector<float> x(static_cast<std::size_t>(n));
  Rng rng(5);
  for (auto& v : x) v = static_cast<float>(rng.uniform() * 12.0 - 6.0);
  std::vector<float> by_two = x, by_one = x, one_at_a_time = x;
  compute::set_threads(2);
  kernels::tanh_inplace(n, by_two.data());
  compute::set_threads(1);
  kernels::tanh_inplace(n, by_one.data());
  for (auto& v : one_at_a_time) kernels::tanh_inplace(1, &v);
  bool same = true, close = true;
  for (std::size_t i = 0; i < x.size(); ++i) {
    same = same && by_two[i] == by_one[i] && by_one[i] == one_at_a_time[i];
    close = close && std::fabs(by_one[i] - std::tanh(x[i])) <= 1e-6f;
  }
  CHECK(same);
  CHECK(close);

  std::vector<float> into_two(x.size(), 1.0f), into_one(x.size(), 1.0f), from_two = x, from_one = x;
  compute::set_threads(2);
  kernels::move_add(n, from_two.data(), into_two.data());
  compute::set_threads(1);
  kernels::move_add(n, from_one.data(), into_one.data());
  bool moved = true;
  for (std::size_t i = 0; i < x.size(); ++i)
    moved =
        moved && into_two[i] == 1.0f + x[i] && into_one[i] == into_two[i] && from_two[i] == 0.0f && from_one[i] == 0.0f;
  CHECK(moved);
}
