#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "gloss/nn/layers.h"
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
