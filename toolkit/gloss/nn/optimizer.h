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
void init_parameters(ParameterSet& params, const std::string& method, float scale, Rng& rng);

// Scales all gradients so that their global L2 norm is at most max_norm (0: no clipping).
// Returns the norm before clipping.
double clip_grad_norm(ParameterSet& params, double max_norm);

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr from the gradients in params; bumps params.version().
  virtual void step(ParameterSet& params, float lr) = 0;
  // Everything the optimiser carries between steps (for checkpoints), in a fixed order.
  virtual std::vector<Tensor*> state() = 0;
  std::int64_t steps = 0;
};

// "adam" (beta1 0.9, beta2 0.999, eps 1e-8) or "sgd"; throws ConfigError listing the choices.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, const ParameterSet& params);

}  // namespace gloss::nn
