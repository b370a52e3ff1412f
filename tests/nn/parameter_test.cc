#include <catch2/catch.hpp>

#include <cstdint>
#include <stdexcept>

#include "gloss/nn/parameter.h"

using namespace gloss;

TEST_CASE("flat_grads: every gradient a 64-byte aligned part of one buffer, values kept, in order", "[nn][parameter]") {
  nn::ParameterSet params;
  auto& a = params.add("a", {3, 5});  // 15 values: one gap of 1 after it
  auto& b = params.add("b", {16});    // exactly 16
  auto& c = params.add("c", {2});
  for (std::int64_t i = 0; i < a.grad.size(); ++i) a.grad[i] = static_cast<float>(i + 1);
  b.grad[15] = -2.0f;
  c.grad[0] = 7.0f;

  const auto flat = params.flat_grads();
  REQUIRE(flat.size() == 16 + 16 + 16);
  CHECK(a.grad.data() == flat.data());
  CHECK(b.grad.data() == flat.data() + 16);
  CHECK(c.grad.data() == flat.data() + 32);
  for (const auto& p : params.all()) CHECK(reinterpret_cast<std::uintptr_t>(p->grad.data()) % 64 == 0);
  CHECK(a.grad.shape() == std::vector<std::int64_t>{3, 5});
  CHECK(flat[14] == 15.0f);
  CHECK(flat[15] == 0.0f);  // the gap
  CHECK(flat[31] == -2.0f);
  CHECK(flat[32] == 7.0f);
  CHECK(params.flat_grads().data() == flat.data());  // the same buffer again

  params.zero_grad();
  for (float g : flat) CHECK(g == 0.0f);
  CHECK_THROWS_AS(params.add("d", {4}), std::logic_error);
}

TEST_CASE("flat_grads: gradients released for translation cannot be flattened", "[nn][parameter]") {
  nn::ParameterSet params;
  params.add("a", {4});
  params.release_grads();
  CHECK_THROWS_AS(params.flat_grads(), std::logic_error);
}

TEST_CASE("share_values_of: a replica built afterwards views the master's values and changes none", "[nn][parameter]") {
  nn::ParameterSet master;
  auto& gain = master.add("ln_gain", {3}, 1.0f);
  auto& w = master.add("w", {2, 2});
  CHECK(gain.value[2] == 1.0f);
  gain.value[0] = 0.5f;
  w.value[3] = -4.0f;

  nn::ParameterSet replica;
  replica.release_grads();
  replica.share_values_of(master);
  auto& gain2 = replica.add("ln_gain", {3}, 1.0f);  // the initial value is not written over the master's
  auto& w2 = replica.add("w", {2, 2});
  CHECK(gain2.value.data() == gain.value.data());
  CHECK(w2.value.data() == w.value.data());
  CHECK(gain.value[0] == 0.5f);
  CHECK(w.value[3] == -4.0f);
  CHECK(gain2.grad.size() == 0);
  const auto before = replica.version();
  master.touch();
  CHECK(replica.version() == before + 1);

  CHECK_THROWS_AS(replica.add("other", {1}), std::logic_error);  // the master has no third parameter
  nn::ParameterSet wrong;
  wrong.share_values_of(master);
  CHECK_THROWS_AS(wrong.add("w", {2, 2}), std::logic_error);  // registered in another order
  nn::ParameterSet shape;
  shape.share_values_of(master);
  CHECK_THROWS_AS(shape.add("ln_gain", {4}), std::logic_error);
}
