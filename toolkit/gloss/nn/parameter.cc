#include "gloss/nn/parameter.h"

#include <algorithm>
#include <stdexcept>

namespace gloss::nn {

Parameter& ParameterSet::add(const std::string& name, std::vector<std::int64_t> shape, float initial) {
  if (grad_arena_.size() > 0) throw std::logic_error("parameter '" + name + "' registered after flat_grads()");
  if (contains(name)) throw std::logic_error("parameter '" + name + "' registered twice");
  auto p = std::make_unique<Parameter>();
  p->name = name;
  if (follows_) {
    p->value = master_view(params_.size(), name, shape);
  } else {
    p->value = Tensor(shape);  // zeroed
    if (initial != 0.0f) p->value.fill(initial);
  }
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
  if (master.params_.size() < params_.size()) throw std::logic_error("replica and master models differ in parameters");
  follows_ = &master;
  for (std::size_t i = 0; i < params_.size(); ++i)
    params_[i]->value = master_view(i, params_[i]->name, params_[i]->value.shape());
}

Tensor ParameterSet::master_view(std::size_t index, const std::string& name,
                                 const std::vector<std::int64_t>& shape) const {
  if (index >= follows_->params_.size())
    throw std::logic_error("replica parameter '" + name + "' is not in the master's set");
  Parameter& theirs = *follows_->params_[index];
  if (name != theirs.name || shape != theirs.value.shape())
    throw std::logic_error("replica parameter '" + name + "' differs from the master's");
  return Tensor::view(theirs.value.data(), theirs.value.shape());
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
