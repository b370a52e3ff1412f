#include "gloss/nn/parameter.h"

#include <algorithm>
#include <stdexcept>

namespace gloss::nn {

Parameter& ParameterSet::add(const std::string& name, std::vector<std::int64_t> shape) {
  if (grad_arena_.size() > 0) throw std::logic_error("parameter '" + name + "' registered after flat_grads()");
  if (contains(name)) throw std::logic_error("parameter '" + name + "' registered twice");
  auto p = std::make_unique<Parameter>();
  p->name = name;
  p->value = Tensor(shape);
  if (!without_grads_) p->grad = Tensor(shape);
  params_.push_back(std::move(p));
  ++version_;
  return *params_.back();
}

Parameter& ParameterSet::get(const std::string& name) {
  for (auto& p : params_)
    if (p->name == name) return *p;
  throw std::logic_error("no parameter '" + name + "'");
}

const Parameter& ParameterSet::get(const std::string& name) const { return const_cast<ParameterSet*>(this)->get(name); }

bool ParameterSet::contains(const std::string& name) const {
  for (const auto& p : params_)
    if (p->name == name) return true;
  return false;
}

void ParameterSet::zero_grad() {
  if (grad_arena_.size() > 0) {
    grad_arena_.zero();
    return;
  }
  for (auto& p : params_) p->grad.zero();
}

std::span<float> ParameterSet::flat_grads() {
  if (grad_arena_.size() == 0) {
    const auto padded = [](std::int64_t n) { return (n + 15) / 16 * 16; };  // 16 floats: 64 bytes
    std::int64_t total = 0;
    for (const auto& p : params_) {
      if (p->grad.size() != p->value.size()) throw std::logic_error("flat_grads() after release_grads()");
      total += padded(p->grad.size());
    }
    grad_arena_ = Tensor({total});  // zeroed
    std::int64_t at = 0;
    for (auto& p : params_) {
      float* part = grad_arena_.data() + at;
      std::copy(p->grad.data(), p->grad.data() + p->grad.size(), part);
      at += padded(p->grad.size());
      p->grad = Tensor::view(part, p->value.shape());
    }
  }
  return {grad_arena_.data(), static_cast<std::size_t>(grad_arena_.size())};
}

void ParameterSet::share_values_of(ParameterSet& master) {
  if (master.params_.size() != params_.size()) throw std::logic_error("replica and master models differ in parameters");
  for (std::size_t i = 0; i < params_.size(); ++i) {
    Parameter& mine = *params_[i];
    Parameter& theirs = *master.params_[i];
    if (mine.name != theirs.name || mine.value.shape() != theirs.value.shape())
      throw std::logic_error("replica parameter '" + mine.name + "' differs from the master's");
    mine.value = Tensor::view(theirs.value.data(), theirs.value.shape());
  }
  follows_ = &master;
}

void ParameterSet::release_grads() {
  for (auto& p : params_) p->grad = Tensor();
  grad_arena_ = Tensor();
  without_grads_ = true;
}

std::int64_t ParameterSet::num_values() const {
  std::int64_t n = 0;
  for (const auto& p : params_) n += p->value.size();
  return n;
}

}  // namespace gloss::nn
