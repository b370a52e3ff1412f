#include "gloss/nn/optimizer.h"

#include <algorithm>
#include <cmath>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/error.h"

namespace gloss::nn {
namespace {

// Values per block of Optimizer::step: a block's gradient, value, two optimiser states and
// average (5 x 32 KB) stay in a core's L2 cache through the step's passes over them.
constexpr std::int64_t kBlock = 8192;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Orthogonal H x H block (rows of stride `stride`) by Gram-Schmidt on Gaussian rows.
void orthogonal(float* w, std::int64_t h, std::int64_t stride, Rng& rng) {
  std::vector<double> m(static_cast<std::size_t>(h * h));
  for (auto& x : m) x = rng.normal();
  for (std::int64_t i = 0; i < h; ++i) {
    double* row = m.data() + i * h;
    for (std::int64_t j = 0; j < i; ++j) {
      const double* prev = m.data() + j * h;
      double dot = 0;
      for (std::int64_t k = 0; k < h; ++k) dot += row[k] * prev[k];
      for (std::int64_t k = 0; k < h; ++k) row[k] -= dot * prev[k];
    }
    double norm = 0;
    for (std::int64_t k = 0; k < h; ++k) norm += row[k] * row[k];
    norm = std::sqrt(norm);
    for (std::int64_t k = 0; k < h; ++k) row[k] /= norm;
  }
  for (std::int64_t i = 0; i < h; ++i)
    for (std::int64_t k = 0; k < h; ++k) w[i * stride + k] = static_cast<float>(m[static_cast<std::size_t>(i * h + k)]);
}

class Adam : public Optimizer {
 public:
  explicit Adam(const ParameterSet& params) {
    for (const auto& p : params.all()) {
      m_.emplace_back(p->value.shape());
      v_.emplace_back(p->value.shape());
    }
  }
  void update(Parameter& p, std::size_t param, std::int64_t begin, std::int64_t end, float lr) override {
    const double b1 = 0.9, b2 = 0.999;
    const float c1 = static_cast<float>(1.0 / (1.0 - std::pow(b1, static_cast<double>(steps))));
    const float c2 = static_cast<float>(1.0 / (1.0 - std::pow(b2, static_cast<double>(steps))));
    kernels::adam(end - begin, lr, c1, c2, p.value.data() + begin, p.grad.data() + begin, m_[param].data() + begin,
                  v_[param].data() + begin);
  }
  std::vector<Tensor*> state() override {
    std::vector<Tensor*> out;
    for (auto& t : m_) out.push_back(&t);
    for (auto& t : v_) out.push_back(&t);
    return out;
  }

 private:
  std::vector<Tensor> m_, v_;
};

class Sgd : public Optimizer {
 public:
  void update(Parameter& p, std::size_t, std::int64_t begin, std::int64_t end, float lr) override {
    float* w = p.value.data();
    const float* g = p.grad.data();
#pragma omp simd
    for (std::int64_t k = begin; k < end; ++k) w[k] -= lr * g[k];
  }
  std::vector<Tensor*> state() override { return {}; }
};

}  // namespace

void init_parameters(ParameterSet& params, const std::string& method, float scale, Rng& rng) {
  if (method != "uniform" && method != "glorot")
    throw ConfigError("train.init: unknown method '" + method + "'; choose uniform or glorot");
  for (const auto& p : params.all()) {
    Tensor& t = p->value;
    if (ends_with(p->name, "/ln_gain") || ends_with(p->name, "/ln_bias")) {  // layer norm: 1 and 0, no draws
      t.fill(ends_with(p->name, "/ln_gain") ? 1.0f : 0.0f);
      continue;
    }
    if (method == "uniform") {
      for (std::int64_t i = 0; i < t.size(); ++i) t[i] = rng.uniform(-scale, scale);
      continue;
    }
    const auto& shape = t.shape();
    if (shape.size() == 1 || ends_with(p->name, "/bias") || ends_with(p->name, "/b")) {
      t.zero();
    } else if (ends_with(p->name, "/weights_iter")) {  // [H, G, H]: one orthogonal block per gate
      const std::int64_t h = shape[0], g = shape[1];
      for (std::int64_t gate = 0; gate < g; ++gate) orthogonal(t.data() + gate * h, h, g * h, rng);
    } else {
      const std::int64_t fan_out = shape.back(), fan_in = t.size() / fan_out;
      const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
      for (std::int64_t i = 0; i < t.size(); ++i) t[i] = rng.uniform(-limit, limit);
    }
  }
  params.touch();
}

double grad_norm(ParameterSet& params) {
  double sq = 0.0;
  for (const auto& p : params.all()) sq += kernels::sum_squares(p->grad.size(), p->grad.data());
  return std::sqrt(sq);
}

float clip_scale(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? static_cast<float>(max_norm / (norm + 1e-6)) : 1.0f;
}

void Optimizer::step(ParameterSet& params, float lr, float grad_scale, WeightAverage* average) {
  ++steps;
  const auto shrink = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  const float d = average ? average->decay_at(steps) : 0.0f;
  const auto& all = params.all();
  struct Block {
    std::size_t param;
    std::int64_t begin, end;
  };
  std::vector<Block> blocks;
  for (std::size_t i = 0; i < all.size(); ++i)
    for (std::int64_t b = 0, n = all[i]->value.size(); b < n; b += kBlock)
      blocks.push_back({i, b, std::min(n, b + kBlock)});
  compute::run_workers(compute::threads(), blocks.size(), [&](int, std::size_t k) {
    const Block& b = blocks[k];
    Parameter& p = *all[b.param];
    const std::int64_t n = b.end - b.begin;
    if (grad_scale != 1.0f) kernels::scale(n, grad_scale, p.grad.data() + b.begin);
    if (weight_decay > 0) kernels::scale(n, shrink, p.value.data() + b.begin);
    update(p, b.param, b.begin, b.end, lr);
    if (average) average->update_values(p, b.param, b.begin, b.end, d);
  });
  params.touch();
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& name, const ParameterSet& params, double weight_decay) {
  if (weight_decay < 0) throw ConfigError("train.weight_decay must be >= 0");
  std::unique_ptr<Optimizer> o;
  if (name == "adam")
    o = std::make_unique<Adam>(params);
  else if (name == "sgd")
    o = std::make_unique<Sgd>();
  else
    throw ConfigError("train.optimizer: unknown optimiser '" + name + "'; choose adam or sgd");
  o->weight_decay = weight_decay;
  return o;
}

WeightAverage::WeightAverage(const ParameterSet& params, double decay) : decay_(decay) {
  if (!(decay > 0 && decay < 1)) throw ConfigError("train.ema_decay must be in (0, 1)");
  for (const auto& p : params.all()) avg_.push_back(p->value);
}

float WeightAverage::decay_at(std::int64_t step) const {
  const double t = static_cast<double>(step);
  return static_cast<float>(std::min(decay_, (1.0 + t) / (10.0 + t)));
}

void WeightAverage::update_values(const Parameter& p, std::size_t param, std::int64_t begin, std::int64_t end,
                                  float d) {
  float* a = avg_[param].data();
  const float* w = p.value.data();
#pragma omp simd
  for (std::int64_t k = begin; k < end; ++k) a[k] = d * a[k] + (1.0f - d) * w[k];
}

void WeightAverage::swap_with(ParameterSet& params) {
  const auto& all = params.all();
  for (std::size_t i = 0; i < all.size(); ++i)
    std::swap_ranges(avg_[i].data(), avg_[i].data() + avg_[i].size(), all[i]->value.data());
  params.touch();
}

std::vector<Tensor*> WeightAverage::state() {
  std::vector<Tensor*> out;
  for (auto& t : avg_) out.push_back(&t);
  return out;
}

}  // namespace gloss::nn
