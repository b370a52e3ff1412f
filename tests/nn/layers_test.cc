#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gloss/nn/layers.h"
#include "gloss/nn/parameter.h"
#include "gloss/tensor/compute.h"
#include "gloss/util/rng.h"

using namespace gloss;

TEST_CASE("softmax cross-entropy with label smoothing: value and fused gradient against a double reference",
          "[nn][loss]") {
  const std::int64_t M = 4, V = 7;
  Rng rng(3);
  std::vector<float> logits(M * V);
  for (auto& x : logits) x = rng.uniform(-3.f, 3.f);
  const std::vector<std::int32_t> targets = {2, 0, 6, 5};  // row 1 is padding (id 0)
  const float eps = 0.1f;
  auto reference = [&](const std::vector<double>& z) {  // -sum_v q_v log p_v in double
    double total = 0;
    for (std::int64_t i = 0; i < M; ++i) {
      if (targets[static_cast<std::size_t>(i)] == 0) continue;
      double mx = -1e300, s = 0;
      for (std::int64_t k = 0; k < V; ++k) mx = std::max(mx, z[static_cast<std::size_t>(i * V + k)]);
      for (std::int64_t k = 0; k < V; ++k) s += std::exp(z[static_cast<std::size_t>(i * V + k)] - mx);
      for (std::int64_t k = 0; k < V; ++k) {
        const double logp = z[static_cast<std::size_t>(i * V + k)] - mx - std::log(s);
        const double q = (k == targets[static_cast<std::size_t>(i)] ? 1.0 - eps : 0.0) + eps / V;
        total -= q * logp;
      }
    }
    return total;
  };
  std::vector<double> z(logits.begin(), logits.end());
  auto grad = logits;
  const auto loss = nn::softmax_cross_entropy(M, V, grad.data(), targets.data(), 0, eps, true, 1.0f);
  CHECK(loss.tokens == 3);
  CHECK(loss.loss == Approx(reference(z)).epsilon(1e-5));
  for (std::size_t i = 0; i < z.size(); ++i) {
    const double keep = z[i];
    z[i] = keep + 1e-6;
    const double up = reference(z);
    z[i] = keep - 1e-6;
    const double down = reference(z);
    z[i] = keep;
    INFO("logit " << i);
    CHECK(grad[i] == Approx((up - down) / 2e-6).margin(1e-5));
  }
}

TEST_CASE("embedding: padding gives zeros and receives no gradient", "[nn][embedding]") {
  nn::ParameterSet params;
  nn::Embedding emb(params, "e", 5, 3, 0);
  for (std::int64_t i = 0; i < 15; ++i) emb.table().value[i] = static_cast<float>(i + 1);
  const std::int32_t ids[3] = {2, 0, 2};
  float out[9];
  emb.forward(3, ids, out);
  CHECK(out[0] == 7.0f);
  CHECK(out[3] == 0.0f);
  const float d[9] = {1, 1, 1, 5, 5, 5, 2, 2, 2};
  emb.backward(3, ids, d);
  CHECK(emb.table().grad[6] == 3.0f);       // row 2 collected both occurrences
  CHECK(emb.table().grad[0] == 0.0f);       // padding row untouched
  CHECK(emb.table().rows_touched.empty());  // dense unless asked

  nn::Embedding sparse(params, "s", 5, 3, 0, true);
  const std::int32_t more[4] = {4, 0, 1, 4};
  const float d4[12] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4};
  sparse.backward(4, more, d4);
  CHECK(sparse.table().rows_touched == std::vector<std::uint8_t>{0, 1, 0, 0, 1});  // not the padding row
  for (std::int64_t row = 0; row < 5; ++row) {
    const bool has_gradient = sparse.table().grad[row * 3] != 0.0f;
    CHECK(has_gradient == (sparse.table().rows_touched[static_cast<std::size_t>(row)] == 1));
  }
}

// Linear in bf16 reads a copy of W rounded once per update: after the values change (and the
// set's version moves, as the optimiser's step does) it must read the new ones, and give what
// compute::gemm in bf16 gives on the same W, forward and backward.
TEST_CASE("linear in a Bf16Gemms scope: the bf16 copy of W follows the values' version", "[nn][bf16]") {
  if (!compute::has_bf16()) {
    WARN("this CPU lacks AVX512-BF16: the bf16 Linear test does not apply");
    return;
  }
  const std::int64_t M = 5, in = 6, out = 9;
  nn::ParameterSet params;
  nn::Linear linear(params, "lin", in, out);
  Rng rng(11);
  std::vector<float> x(M * in), dy(M * out);
  for (auto& v : x) v = rng.uniform(-1.f, 1.f);
  for (auto& v : dy) v = rng.uniform(-1.f, 1.f);
  const compute::Bf16Gemms scope;
  for (int update = 0; update < 2; ++update) {
    for (std::int64_t i = 0; i < params.get("lin/weight").value.size(); ++i)
      params.get("lin/weight").value[i] = rng.uniform(-1.f, 1.f);
    params.touch();
    const float* w = params.get("lin/weight").value.data();
    std::vector<float> y(M * out), want(M * out, 0.0f), dx(M * in), want_dx(M * in, 0.0f);
    linear.forward(M, x.data(), y.data());
    compute::gemm(false, false, M, out, in, 1.0f, x.data(), in, w, out, 1.0f, want.data(), out);  // bias is 0
    CHECK(y == want);
    linear.backward(M, x.data(), dy.data(), dx.data());
    compute::gemm(false, true, M, in, out, 1.0f, dy.data(), out, w, out, 0.0f, want_dx.data(), in);
    CHECK(dx == want_dx);
  }
}
