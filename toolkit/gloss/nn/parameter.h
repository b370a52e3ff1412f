#pragma once
// Every trainable tensor of a model, by stable hierarchical name ("decoder/attention/v"):
// the one place the optimiser and checkpoints read. Layers keep references into it.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "gloss/tensor/tensor.h"

namespace gloss::nn {

struct Parameter {
  std::string name;
  Tensor value;
  Tensor grad;  // same shape; layers accumulate into it
  // For a table only some of whose rows receive gradient (an embedding not also used as a
  // dense matrix): one flag per row (value.shape()[0]), set to 1 by the layer's backward for
  // each row it adds to. Rows never flagged have a zero gradient, so whoever sums gradients
  // across processes may skip them; it clears the flags. Empty: the gradient is dense.
  std::vector<std::uint8_t> rows_touched;
};

class ParameterSet {
 public:
  // Registers a parameter whose values are all `initial` (and its zero gradient, unless
  // gradients were released), or after share_values_of a view of the master's values, left
  // as they are; names are unique. Not after flat_grads().
  Parameter& add(const std::string& name, std::vector<std::int64_t> shape, float initial = 0.0f);
  Parameter& get(const std::string& name);
  const Parameter& get(const std::string& name) const;
  bool contains(const std::string& name) const;
  const std::vector<std::unique_ptr<Parameter>>& all() const { return params_; }
  void zero_grad();
  // Frees the gradients of a model that only runs forward (translation): less memory.
  // Parameters registered afterwards get none either, so calling it before the model is
  // built saves allocating and zeroing them at all.
  void release_grads();
  std::int64_t num_values() const;

  // Every gradient in one contiguous buffer, so that one collective or one kernel call can
  // sum, copy or clear them all: parameter after parameter in registration order, each
  // starting on a 64-byte boundary (the gaps are zero and stay zero, as every operation on
  // them is element-wise). The first call moves the gradients into it (each grad becomes a
  // view of its part); later calls return the same buffer, which this set owns. Throws
  // std::logic_error if gradients were released.
  std::span<float> flat_grads();

  // Incremented whenever values change (optimiser step, load): layers that keep derived
  // copies (reordered weights) refresh them when it moves.
  std::uint64_t version() const { return follows_ ? follows_->version() : version_; }
  void touch() { ++version_; }

  // Makes this set (same names and shapes, registered by an identical model) read the values
  // of `master` instead of its own and follow its version: a replica that computes gradients
  // of its own on the master's weights. Its gradients stay its own. Called before the replica
  // is built, add() allocates no values at all (each is a view of the master's parameter with
  // the same registration index); parameters already registered become views too.
  // std::logic_error when a name or shape differs from the master's.
  void share_values_of(ParameterSet& master);

 private:
  // A view of the master's parameter number `index` (std::logic_error if it has another name or shape).
  Tensor master_view(std::size_t index, const std::string& name, const std::vector<std::int64_t>& shape) const;

  ParameterSet* follows_ = nullptr;
  bool without_grads_ = false;  // release_grads() was called
  std::vector<std::unique_ptr<Parameter>> params_;
  Tensor grad_arena_;  // flat_grads(), once called
  std::uint64_t version_ = 1;
};

}  // namespace gloss::nn
