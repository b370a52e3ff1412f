// oneDNN's GRU/LSTM (inference) and RnnSteps (training) against a plain C++ reference of the
// cell equations (double precision), and RnnSteps' backward against finite differences of it.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <stdexcept>

#include "gloss/nn/rnn.h"
#include "gloss/nn/rnn_steps.h"
#include "gloss/tensor/compute.h"
#include "gloss/util/rng.h"

using namespace gloss;
using namespace gloss::nn;

namespace {

double sigm(double x) { return 1.0 / (1.0 + std::exp(-x)); }

struct Reference {
  CellType cell;
  int C, H, G;
  std::vector<double> W, U, b;  // [C,G,H], [H,G,H], [4,H]

  // Runs T steps; returns y [T,N,H], final h and c.
  void run(int T, int N, const std::vector<double>& x, const std::vector<double>& h0, const std::vector<double>& c0,
           std::vector<double>& y, std::vector<double>& hT, std::vector<double>& cT) const {
    std::vector<double> h = h0, c = c0;
    y.assign(static_cast<std::size_t>(T * N * H), 0.0);
    for (int t = 0; t < T; ++t) {
      std::vector<double> hn(h.size()), cn(c.size());
      for (int n = 0; n < N; ++n) {
        std::vector<double> gx(static_cast<std::size_t>(G * H), 0.0), gh(static_cast<std::size_t>(G * H), 0.0);
        for (int g = 0; g < G; ++g)
          for (int k = 0; k < H; ++k) {
            for (int i = 0; i < C; ++i) gx[g * H + k] += x[(t * N + n) * C + i] * W[(i * G + g) * H + k];
            for (int i = 0; i < H; ++i) gh[g * H + k] += h[n * H + i] * U[(i * G + g) * H + k];
          }
        for (int k = 0; k < H; ++k) {
          const double hp = h[n * H + k];
          if (cell == CellType::kGru) {
            const double u = sigm(gx[0 * H + k] + gh[0 * H + k] + b[0 * H + k]);
            const double r = sigm(gx[1 * H + k] + gh[1 * H + k] + b[1 * H + k]);
            const double o = std::tanh(gx[2 * H + k] + b[2 * H + k] + r * (gh[2 * H + k] + b[3 * H + k]));
            hn[n * H + k] = u * hp + (1 - u) * o;
          } else {
            const double i = sigm(gx[0 * H + k] + gh[0 * H + k] + b[0 * H + k]);
            const double f = sigm(gx[1 * H + k] + gh[1 * H + k] + b[1 * H + k]);
            const double cc = std::tanh(gx[2 * H + k] + gh[2 * H + k] + b[2 * H + k]);
            const double o = sigm(gx[3 * H + k] + gh[3 * H + k] + b[3 * H + k]);
            cn[n * H + k] = f * c[n * H + k] + i * cc;
            hn[n * H + k] = o * std::tanh(cn[n * H + k]);
          }
        }
      }
      h = hn;
      if (cell == CellType::kLstm) c = cn;
      for (int n = 0; n < N; ++n)
        for (int k = 0; k < H; ++k) y[(t * N + n) * H + k] = h[n * H + k];
    }
    hT = h;
    cT = c;
  }
};

// Every parameter value drawn uniformly from [-scale, scale].
void randomize(ParameterSet& params, Rng& rng, float scale) {
  for (auto& p : params.all())
    for (std::int64_t i = 0; i < p->value.size(); ++i) p->value[i] = rng.uniform(-scale, scale);
}

// The largest difference between a and b, relative to b's largest magnitude.
double max_relative(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    norm = std::max(norm, static_cast<double>(std::fabs(b[i])));
  }
  return diff / norm;
}

std::vector<double> to_double(const Tensor& t) { return {t.data(), t.data() + t.size()}; }
std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

void check_cell(CellType cell) {
  compute::set_threads(1);
  const int T = 4, N = 3, C = 5, H = 4;
  ParameterSet params;
  RnnCell rnn(params, "rnn", cell, C, H);
  Rng rng(11);
  randomize(params, rng, 0.5f);
  Reference ref{cell,
                C,
                H,
                rnn.gates(),
                to_double(params.get("rnn/weights_layer").value),
                to_double(params.get("rnn/weights_iter").value),
                to_double(params.get("rnn/bias").value)};
  auto rand_vec = [&](std::size_t n) {
    std::vector<double> v(n);
    for (auto& x : v) x = rng.uniform(-1.f, 1.f);
    return v;
  };
  const auto x = rand_vec(T * N * C), h0 = rand_vec(N * H), gy = rand_vec(T * N * H), gh = rand_vec(N * H);
  const auto c0 = cell == CellType::kLstm ? rand_vec(N * H) : std::vector<double>(N * H, 0.0);
  const auto gc = cell == CellType::kLstm ? rand_vec(N * H) : std::vector<double>(N * H, 0.0);

  // Inference (oneDNN) equals the reference.
  const auto xf = to_float(x), h0f = to_float(h0), c0f = to_float(c0);
  const bool lstm = cell == CellType::kLstm;
  std::vector<float> y(T * N * H), hT(N * H), cT(N * H);
  rnn.forward(T, N, xf.data(), h0f.data(), c0f.data(), y.data(), hT.data(), cT.data());
  std::vector<double> ry, rh, rc;
  ref.run(T, N, x, h0, c0, ry, rh, rc);
  for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(y[i] == Approx(ry[i]).margin(2e-6));
  for (std::size_t i = 0; i < hT.size(); ++i) REQUIRE(hT[i] == Approx(rh[i]).margin(2e-6));
  if (lstm)
    for (std::size_t i = 0; i < cT.size(); ++i) REQUIRE(cT[i] == Approx(rc[i]).margin(2e-6));

  // Training (RnnSteps, step by step) gives the same states, and gradients of
  // L = gy.y + gh.hT + gc.cT that match central differences of the reference.
  const auto gyf = to_float(gy), ghf = to_float(gh), gcf = to_float(gc);
  std::vector<float> dx(T * N * C), dh0(N * H), dc0(N * H);
  auto train = [&] {
    std::vector<float> hs((T + 1) * N * H), cs((T + 1) * N * H);
    std::copy(h0f.begin(), h0f.end(), hs.begin());
    std::copy(c0f.begin(), c0f.end(), cs.begin());
    RnnSteps steps(rnn);
    steps.begin(T, N, xf.data(), hs.data(), lstm ? cs.data() : nullptr);
    for (int t = 0; t < T; ++t) steps.forward(t, hs.data() + (t + 1) * N * H, cs.data() + (t + 1) * N * H);
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(hs[N * H + i] == Approx(ry[i]).margin(2e-6));
    if (lstm)
      for (std::size_t i = 0; i < cT.size(); ++i) REQUIRE(cs[T * N * H + i] == Approx(rc[i]).margin(2e-6));
    std::vector<float> dh(ghf), dc(gcf), dyt(N * H);
    for (int t = T - 1; t >= 0; --t) {
      for (int k = 0; k < N * H; ++k) dyt[k] = gyf[t * N * H + k] + dh[k];
      steps.backward(t, dyt.data(), lstm ? dc.data() : nullptr, dx.data() + t * N * C, dh0.data(), dc0.data());
      dh = dh0;
      dc = dc0;
    }
    steps.finish_backward();
  };
  params.zero_grad();
  train();
  auto loss = [&](const Reference& r, const std::vector<double>& xx, const std::vector<double>& hh,
                  const std::vector<double>& cc) {
    std::vector<double> yy, ht, ct;
    r.run(T, N, xx, hh, cc, yy, ht, ct);
    double l = 0;
    for (std::size_t i = 0; i < yy.size(); ++i) l += gy[i] * yy[i];
    for (std::size_t i = 0; i < ht.size(); ++i) l += gh[i] * ht[i] + gc[i] * ct[i];
    return l;
  };
  const double eps = 1e-6;
  auto numeric = [&](std::vector<double>& v, std::size_t i, const std::function<double()>& f) {
    const double keep = v[i];
    v[i] = keep + eps;
    const double up = f();
    v[i] = keep - eps;
    const double down = f();
    v[i] = keep;
    return (up - down) / (2 * eps);
  };
  auto expect = [](double analytic, double numeric_value, const char* what, std::size_t i) {
    INFO(what << "[" << i << "]: analytic " << analytic << ", numeric " << numeric_value);
    CHECK(std::abs(analytic - numeric_value) <= 1e-4 + 1e-3 * std::abs(numeric_value));
  };
  {
    auto xx = x;
    for (std::size_t i = 0; i < xx.size(); ++i)
      expect(dx[i], numeric(xx, i, [&] { return loss(ref, xx, h0, c0); }), "dx", i);
    auto hh = h0;
    for (std::size_t i = 0; i < hh.size(); ++i)
      expect(dh0[i], numeric(hh, i, [&] { return loss(ref, x, hh, c0); }), "dh0", i);
    if (cell == CellType::kLstm) {
      auto cc = c0;
      for (std::size_t i = 0; i < cc.size(); ++i)
        expect(dc0[i], numeric(cc, i, [&] { return loss(ref, x, h0, cc); }), "dc0", i);
    }
  }
  Reference r = ref;
  const auto& gw = params.get("rnn/weights_layer").grad;
  const auto& gu = params.get("rnn/weights_iter").grad;
  const auto& gb = params.get("rnn/bias").grad;
  for (std::size_t i = 0; i < r.W.size(); ++i)
    expect(gw[i], numeric(r.W, i, [&] { return loss(r, x, h0, c0); }), "dW", i);
  for (std::size_t i = 0; i < r.U.size(); ++i)
    expect(gu[i], numeric(r.U, i, [&] { return loss(r, x, h0, c0); }), "dU", i);
  for (std::size_t i = 0; i < r.b.size(); ++i)
    expect(gb[i], numeric(r.b, i, [&] { return loss(r, x, h0, c0); }), "db", i);

  // Backward accumulates: a second sequence doubles the weight gradients.
  const float first = gw[0];
  train();
  CHECK(gw[0] == Approx(2 * first).epsilon(1e-5));
}

}  // namespace

TEST_CASE("RnnCell GRU: oneDNN lbr_gru equals the cell equations, RnnSteps too: gradients match finite differences",
          "[nn][rnn]") {
  check_cell(CellType::kGru);
}

TEST_CASE("RnnCell LSTM: oneDNN lstm equals the cell equations, RnnSteps too: gradients match finite differences",
          "[nn][rnn]") {
  check_cell(CellType::kLstm);
}

TEST_CASE("RnnCell in bf16: inference within bf16 rounding of the cell equations", "[nn][rnn]") {
  if (!compute::has_bf16()) {
    WARN("this CPU lacks AVX512-BF16: the bf16 RnnCell test does not apply");
    return;
  }
  compute::set_threads(1);
  for (auto cell : {CellType::kGru, CellType::kLstm}) {
    const int T = 6, N = 3, C = 24, H = 16;
    ParameterSet params;
    RnnCell rnn(params, "rnn", cell, C, H);
    Rng rng(31);
    randomize(params, rng, 0.3f);
    std::vector<float> x(T * N * C), h0(N * H), c0(N * H);
    for (auto& v : x) v = rng.uniform(-1.f, 1.f);
    for (auto& v : h0) v = rng.uniform(-0.5f, 0.5f);
    for (auto& v : c0) v = rng.uniform(-0.5f, 0.5f);
    const int G = rnn.gates();
    Reference ref{cell,
                  C,
                  H,
                  G,
                  to_double(params.get("rnn/weights_layer").value),
                  to_double(params.get("rnn/weights_iter").value),
                  to_double(params.get("rnn/bias").value)};
    std::vector<double> y_ref, h_ref, c_ref;
    ref.run(T, N, {x.begin(), x.end()}, {h0.begin(), h0.end()}, {c0.begin(), c0.end()}, y_ref, h_ref, c_ref);

    std::vector<float> y32(T * N * H), y16(T * N * H), h16(N * H), c16(N * H);
    rnn.forward(T, N, x.data(), h0.data(), c0.data(), y32.data(), nullptr, nullptr);
    rnn.set_bf16(true);
    rnn.forward(T, N, x.data(), h0.data(), c0.data(), y16.data(), h16.data(), c16.data());
    double err16 = 0, err32 = 0;
    for (std::size_t i = 0; i < y_ref.size(); ++i) {
      err16 = std::max(err16, std::fabs(y16[i] - y_ref[i]));
      err32 = std::max(err32, std::fabs(y32[i] - y_ref[i]));
    }
    CHECK(err32 < 1e-5);
    CHECK(err16 < 3e-2);  // inputs, states and weights carry 8 significant bits
    CHECK(err16 > 1e-4);  // and bf16 did run
    for (int i = 0; i < N * H; ++i) {
      CHECK(h16[i] == y16[(T - 1) * N * H + i]);  // the final state is the last output
      if (cell == CellType::kLstm) CHECK(c16[i] == Approx(c_ref[i]).margin(3e-2));
    }
  }
}

namespace {

// A cell with random weights, inputs, initial states and output gradients for RnnSteps' tests.
struct StepsCase {
  int T, N;
  ParameterSet params;
  RnnCell rnn;
  std::vector<float> x, h0, c0, dy, dhT, dcT;

  StepsCase(CellType cell, int T_, int N_, int C, int H, std::uint64_t seed, float scale)
      : T(T_), N(N_), rnn(params, "rnn", cell, C, H) {
    Rng rng(seed);
    randomize(params, rng, scale);
    for (auto [v, n] :
         {std::pair{&x, T * N * C}, {&h0, N * H}, {&c0, N * H}, {&dy, T * N * H}, {&dhT, N * H}, {&dcT, N * H}}) {
      v->resize(static_cast<std::size_t>(n));
      for (auto& e : *v) e = rng.uniform(-1.f, 1.f);
    }
  }
  bool lstm() const { return rnn.cell() == CellType::kLstm; }

  // T steps of RnnSteps on states kept in [T + 1, N, H] buffers as the decoder keeps them (row 0
  // the initial state), then back: every output (states, final cell state, dx, dh0, dc0) and
  // every parameter gradient, one after the other. `sequence`: in sequence mode, as the encoder
  // runs it (dhT and dcT must be zero; dh0 and dc0 are not computed, so not in the result).
  // `kept`: run on this RnnSteps (kept from an earlier run, as a model keeps them) instead of a new one.
  // `known`: the first `known` input columns given as known columns (from a copy of x), their
  // gradient merged back into dx's first columns, which backward must leave as they were.
  std::vector<float> run_steps(bool sequence = false, RnnSteps* kept = nullptr, int known = 0) {
    const int C = static_cast<int>(rnn.input_size()), H = static_cast<int>(rnn.hidden_size());
    params.zero_grad();
    std::vector<float> hs((T + 1) * N * H), cs((T + 1) * N * H);
    std::copy(h0.begin(), h0.end(), hs.begin());
    std::copy(c0.begin(), c0.end(), cs.begin());
    RnnSteps fresh(rnn);
    RnnSteps& steps = kept ? *kept : fresh;
    std::vector<float> known_x, dknown(T * N * known);
    for (int r = 0; r < T * N; ++r) known_x.insert(known_x.end(), x.begin() + r * C, x.begin() + r * C + known);
    steps.begin(T, N, x.data(), hs.data(), lstm() ? cs.data() : nullptr, known ? known_x.data() : nullptr, known);
    std::vector<float> dh(dhT), dc(dcT), dh_prev(N * H), dc_prev(N * H), dx(T * N * C, 7.0f), dyt(N * H);
    if (sequence) {
      steps.forward_sequence();
      steps.backward_sequence(dy.data(), dx.data());
    } else {
      for (int t = 0; t < T; ++t) steps.forward(t, hs.data() + (t + 1) * N * H, cs.data() + (t + 1) * N * H);
      for (int t = T - 1; t >= 0; --t) {
        for (int k = 0; k < N * H; ++k) dyt[k] = dy[t * N * H + k] + dh[k];
        steps.backward(t, dyt.data(), lstm() ? dc.data() : nullptr, dx.data() + t * N * C, dh_prev.data(),
                       dc_prev.data());
        dh = dh_prev;
        dc = dc_prev;
      }
      steps.finish_backward(dknown.data());
    }
    for (int r = 0; r < T * N; ++r)
      for (int k = 0; k < known; ++k) {
        if (dx[r * C + k] != 7.0f) throw std::logic_error("backward wrote a known column of dx");
        dx[r * C + k] = dknown[r * known + k];
      }
    std::vector<float> all(hs.begin() + N * H, hs.end());
    if (lstm()) all.insert(all.end(), cs.end() - N * H, cs.end());
    all.insert(all.end(), dx.begin(), dx.end());
    if (!sequence) all.insert(all.end(), dh.begin(), dh.end());
    if (lstm() && !sequence) all.insert(all.end(), dc.begin(), dc.end());
    for (auto& p : params.all()) all.insert(all.end(), p->grad.data(), p->grad.data() + p->grad.size());
    return all;
  }
};

}  // namespace

TEST_CASE("RnnSteps in sequence mode (the encoder's) equals its step-by-step mode, outputs and gradients",
          "[nn][rnn]") {
  compute::set_threads(1);
  for (auto cell : {CellType::kGru, CellType::kLstm}) {
    StepsCase t(cell, 6, 3, 5, 4, 43, 0.5f);
    std::fill(t.dhT.begin(), t.dhT.end(), 0.0f);  // sequence mode: the last step's gradient comes in dy
    std::fill(t.dcT.begin(), t.dcT.end(), 0.0f);
    const int H = 4, N = 3;
    auto steps = t.run_steps();
    steps.erase(steps.end() - static_cast<std::ptrdiff_t>(t.params.num_values() + (t.lstm() ? 2 : 1) * N * H),
                steps.end() - static_cast<std::ptrdiff_t>(t.params.num_values()));  // without dh0 (dc0)
    const auto sequence = t.run_steps(true);
    INFO("cell " << (t.lstm() ? "lstm" : "gru"));
    REQUIRE(sequence.size() == steps.size());
    for (std::size_t k = 0; k < steps.size(); ++k) CHECK(sequence[k] == Approx(steps[k]).margin(1e-5));
  }
}

TEST_CASE("RnnSteps with known input columns (the decoder's embeddings) equals it without, outputs and gradients",
          "[nn][rnn]") {
  compute::set_threads(1);
  for (auto cell : {CellType::kGru, CellType::kLstm})
    for (int T : {1, 5}) {
      StepsCase t(cell, T, 3, 5, 4, 47, 0.5f);
      const auto plain = t.run_steps();
      for (int known : {2, 5}) {  // part of the input, and all of it (the conditional decoder's word RNN)
        INFO("cell " << (t.lstm() ? "lstm" : "gru") << ", T " << T << ", known " << known);
        const auto with_known = t.run_steps(false, nullptr, known);
        REQUIRE(with_known.size() == plain.size());
        for (std::size_t k = 0; k < plain.size(); ++k) CHECK(with_known[k] == Approx(plain[k]).margin(1e-5));
      }
    }
}

TEST_CASE("RnnSteps in bf16: within bf16 rounding of f32, deterministic, weights reconverted after an update",
          "[nn][rnn]") {
  if (!compute::has_bf16()) {
    WARN("this CPU lacks AVX512-BF16: the bf16 training test does not apply");
    return;
  }
  compute::set_threads(1);
  for (auto cell : {CellType::kGru, CellType::kLstm}) {
    StepsCase t(cell, 7, 3, 24, 16, 41, 0.3f);
    auto run = [&](bool bf16, bool sequence = false) {
      std::optional<compute::Bf16Gemms> scope;
      if (bf16) scope.emplace();
      return t.run_steps(sequence);
    };
    INFO("cell " << (t.lstm() ? "lstm" : "gru"));
    const auto f32 = run(false), b16 = run(true);
    CHECK(max_relative(b16, f32) < 3e-2);  // 8 significant bits in, f32 accumulation
    CHECK(max_relative(b16, f32) > 1e-4);  // and bf16 did run
    const auto f32_sequence = run(false, true), b16_sequence = run(true, true);  // the encoder's mode
    CHECK(max_relative(b16_sequence, f32_sequence) < 3e-2);
    CHECK(max_relative(b16_sequence, f32_sequence) > 1e-4);
    const auto again = run(true);
    CHECK(std::memcmp(b16.data(), again.data(), b16.size() * sizeof(float)) == 0);
    // An update (new values, the set's version moved): the bf16 copies follow.
    for (auto* p : {&t.params.get("rnn/weights_layer"), &t.params.get("rnn/weights_iter")})
      for (std::int64_t k = 0; k < p->value.size(); ++k) p->value[k] *= -1.0f;
    t.params.touch();
    const auto f32_new = run(false), b16_new = run(true);
    CHECK(max_relative(b16_new, f32_new) < 3e-2);
    CHECK(max_relative(b16_new, b16) > 0.1);
  }
}

TEST_CASE("RnnSteps kept across an update computes with the new weights (its transposed and bf16 copies follow)",
          "[nn][rnn]") {
  compute::set_threads(1);
  for (bool bf16 : {false, true}) {
    if (bf16 && !compute::has_bf16()) continue;
    std::optional<compute::Bf16Gemms> scope;
    if (bf16) scope.emplace();
    for (auto cell : {CellType::kGru, CellType::kLstm})
      for (bool sequence : {false, true}) {
        StepsCase t(cell, 5, 3, 6, 4, 47, 0.5f);
        if (sequence) {  // sequence mode: the last step's gradient comes in dy
          std::fill(t.dhT.begin(), t.dhT.end(), 0.0f);
          std::fill(t.dcT.begin(), t.dcT.end(), 0.0f);
        }
        INFO("bf16 " << bf16 << ", cell " << (t.lstm() ? "lstm" : "gru") << ", sequence " << sequence);
        RnnSteps kept(t.rnn);
        const auto before = t.run_steps(sequence, &kept);
        for (auto* p : {&t.params.get("rnn/weights_layer"), &t.params.get("rnn/weights_iter")})
          for (std::int64_t k = 0; k < p->value.size(); ++k) p->value[k] = 0.5f * p->value[k] + 0.01f;
        t.params.touch();
        const auto after = t.run_steps(sequence, &kept), fresh = t.run_steps(sequence);
        REQUIRE(after.size() == fresh.size());
        CHECK(std::memcmp(after.data(), fresh.data(), after.size() * sizeof(float)) == 0);
        CHECK(max_relative(after, before) > 0.1);
      }
  }
}
