#pragma once
// Parameter initialisation, optimisers (Adam, SGD) with a state that checkpoints save, and
// global-norm gradient clipping. All randomness comes from the caller's Rng.
#include <memory>
#include <string>
#include <vector>

#include "gloss/nn/parameter.h"
#include "gloss/util/rng.h"

namespace gloss::nn {

// "uniform": every value U(-scale, scale) (the PyTorch peer's choice).
// "glorot": matrices Glorot-uniform, recurrent weights orthogonal per gate, biases zero.
// Either way layer-norm gains ("/ln_gain") start at 1 and their biases at 0, drawing nothing.
void init_parameters(ParameterSet& params, const std::string& method, float scale, Rng& rng);

// The global L2 norm of all gradients, and the factor that brings it down to max_norm
// (1 when it is already at most max_norm, or max_norm is 0: no clipping).
double grad_norm(const ParameterSet& params);
float clip_factor(double norm, double max_norm);
// Scales all gradients in place by clip_factor; returns the norm before clipping.
double clip_grad_norm(ParameterSet& params, double max_norm);

class WeightAverage;

class Optimizer {
 public:
  // One update: learning rate lr, the gradients in params times grad_scale (e.g. clip_factor;
  // the gradients themselves stay as they are). With an average, it then follows the new
  // weights as average->update(params, step) would, in the same pass over memory where the
  // optimiser can (Adam).
  struct Update {
    float lr = 0.0f;
    float grad_scale = 1.0f;
    WeightAverage* average = nullptr;  // not owned; may be null
    std::int64_t step = 0;             // the update's number, for the average's decay
  };
  virtual ~Optimizer() = default;
  // Bumps params.version(). With weight decay wd, every value first shrinks by lr * wd
  // (decoupled from the gradient, Loshchilov & Hutter 2019: AdamW).
  void step(ParameterSet& params, const Update& u);
  void step(ParameterSet& params, float lr) { step(params, Update{.lr = lr}); }
  // Everything the optimiser carries between steps (for checkpoints), in a fixed order.
  virtual std::vector<Tensor*> state() = 0;
  std::int64_t steps = 0;
  double weight_decay = 0;

 protected:
  virtual void update(ParameterSet& params, const Update& u) = 0;
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
  void update(const ParameterSet& params, std::int64_t step);
  // d_t above, and the average of params.all()[i] (for optimisers that update it themselves).
  float keep(std::int64_t step) const;
  float* values(std::size_t i) { return avg_[i].data(); }
  // Exchanges the averages and params' values (a second call swaps back); bumps the version.
  void swap_with(ParameterSet& params);
  std::vector<Tensor*> state();

 private:
  double decay_;
  std::vector<Tensor> avg_;
};

}  // namespace gloss::nn
