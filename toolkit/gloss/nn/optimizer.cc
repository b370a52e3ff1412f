#include "gloss/nn/optimizer.h"

#include <algorithm>
#include <cmath>

#include "gloss/tensor/compute.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/error.h"

namespace gloss::nn {
namespace {

// Values per block of Optimizer::step: its threads take blocks in turn, each one pass over
// the block's arrays (256 KB of each).
constexpr std::int64_t kBlock = 65536;

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
  void add_factors(kernels::StepFactors& f) const override {
    const double t = static_cast<double>(steps);
    f.c1 = static_cast<float>(1.0 / (1.0 - std::pow(0.9, t)));
    f.c2 = static_cast<float>(1.0 / (1.0 - std::pow(0.999, t)));
  }
  void update(Parameter& p, std::size_t param, std::int64_t begin, std::int64_t end, const kernels::StepFactors& f,
              float* average) override {
    kernels::adam_step(end - begin, f, p.value.data() + begin, p.grad.data() + begin, m_[param].data() + begin,
                       v_[param].data() + begin, average ? average + begin : nullptr);
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
  void update(Parameter& p, std::size_t, std::int64_t begin, std::int64_t end, const kernels::StepFactors& f,
              float* average) override {
    kernels::sgd_step(end - begin, f, p.value.data() + begin, p.grad.data() + begin,
                      average ? average + begin : nullptr);
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
  kernels::StepFactors f;
  f.lr = lr;
  f.grad_scale = grad_scale;
  if (weight_decay > 0) f.shrink = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  if (average) f.avg_decay = average->decay_at(steps);
  add_factors(f);
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
    update(*all[b.param], b.param, b.begin, b.end, f, average ? average->values(b.param) : nullptr);
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
