// kernels: the vectorised argmax against a plain scan.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

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
