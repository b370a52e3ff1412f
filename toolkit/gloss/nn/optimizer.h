#pragma once
// Parameter initialisation, optimisers (Adam, SGD) with a state that checkpoints save, and
// global-norm gradient clipping. All randomness comes from the caller's Rng.
#include <memory>
#include <string>
#include <vector>

#include "gloss/nn/parameter.h"
#include "gloss/tensor/kernels.h"
#include "gloss/util/rng.h"

namespace gloss::nn {

// "uniform": every value U(-scale, scale) (the PyTorch peer's choice).
// "glorot": matrices Glorot-uniform, recurrent weights orthogonal per gate, biases zero.
// Either way layer-norm gains ("/ln_gain") start at 1 and their biases at 0, drawing nothing.
void init_parameters(ParameterSet& params, const std::string& method, float scale, Rng& rng);

// The global L2 norm of all gradients (squares summed in double, parameter by parameter).
double grad_norm(ParameterSet& params);
// What clipping to max_norm multiplies every gradient by: max_norm / (norm + 1e-6) when
// max_norm > 0 and norm exceeds it, else 1 (no clipping).
float clip_scale(double norm, double max_norm);

class WeightAverage;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr from the gradients in params; bumps params.version().
  // Per value, in this order: the gradient is multiplied by grad_scale (clipping's factor;
  // 1: unchanged); with weight decay wd, the value shrinks by
  // lr * wd (decoupled from the gradient, Loshchilov & Hutter 2019: AdamW); the optimiser's
  // rule; then, with `average`, its update for this step (decay average->decay_at(steps)).
  // All of it is one pass over each array (kernels::adam_step, sgd_step), block by block on
  // compute::threads() threads; the result does not depend on the thread count.
  // The step consumes the gradients: they are zero after it, ready for the next update's
  // sums (the pass that reads them writes the zero; no separate clearing of every gradient).
  void step(ParameterSet& params, float lr, float grad_scale = 1.0f, WeightAverage* average = nullptr);
  // Everything the optimiser carries between steps (for checkpoints), in a fixed order.
  virtual std::vector<Tensor*> state() = 0;
  std::int64_t steps = 0;
  double weight_decay = 0;

 protected:
  // The rule's own factors for step `steps` (Adam: its bias corrections), set once per step.
  virtual void add_factors(kernels::StepFactors&) const {}
  // The whole step (kernels.h) on values [begin, end) of parameter `param` (params.all()
  // order); `average` is that parameter's weight average, or null.
  virtual void update(Parameter& p, std::size_t param, std::int64_t begin, std::int64_t end,
                      const kernels::StepFactors& f, float* average) = 0;
};

// "adam" (beta1 0.9, beta2 0.999, eps 1e-8) or "sgd", with decoupled weight decay (>= 0);
// throws ConfigError listing the choices.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, const ParameterSet& params, double weight_decay = 0);

// An exponential moving average of the parameters (Polyak averaging; Marian's exponential
// smoothing): after update t, avg = d_t avg + (1 - d_t) w with d_t = min(decay, (1 + t) /
// (10 + t)), so early averages are not dominated by the initial weights. Validation and
// saved models use the average; checkpoints save it (state()).
class WeightAverage {
 public:
  // Starts at params' current values; decay in (0, 1).
  WeightAverage(const ParameterSet& params, double decay);
  // d_t of update `step`.
  float decay_at(std::int64_t step) const;
  // The average of parameter `param` (params.all() order), as many values as it has; owned
  // here. Optimizer::step updates it.
  float* values(std::size_t param) { return avg_[param].data(); }
  // Exchanges the averages and params' values (a second call swaps back); bumps the version.
  void swap_with(ParameterSet& params);
  std::vector<Tensor*> state();

 private:
  double decay_;
  std::vector<Tensor> avg_;
};

}  // namespace gloss::nn
